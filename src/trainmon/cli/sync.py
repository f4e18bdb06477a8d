"""``trainmon sync``: upload what training scripts left in their journals."""

from __future__ import annotations

import click

from trainmon.cli.common import url_option


@click.command("sync")
@url_option
def sync_command(url: str | None) -> None:
    """Upload points that training scripts could not deliver (kept in the journal)."""
    from trainmon.local import read_token, server_url
    from trainmon.sdk.journal import sync_pending

    summary = sync_pending(url or server_url(), read_token())
    click.echo(
        f"uploaded {summary.points_sent:,} points in {summary.batches_sent:,} batches from "
        f"{summary.journals_done} of {summary.journals} journals"
        + (
            f"; {summary.skipped_in_use} still in use by a running script"
            if summary.skipped_in_use
            else ""
        )
    )
    for damaged in summary.damaged:
        ranges = ", ".join(f"{start}-{end}" for start, end in damaged.ranges)
        where = damaged.quarantined or "left in place (could not be moved)"
        click.echo(
            f"{damaged.journal}: skipped {len(damaged.ranges)} damaged range(s), "
            f"{damaged.bytes:,} bytes (byte offsets {ranges}); every intact record was "
            f"uploaded; the journal is kept in {where}",
            err=True,
        )
    if not summary.ok:
        reason = summary.error or (
            f"{summary.pending_points:,} points still pending"
            if summary.pending_batches
            else f"{len(summary.damaged)} journal(s) had damaged bytes that were skipped"
        )
        raise click.ClickException(f"sync incomplete: {reason}")
