"""``trainmon ls``, ``status``, ``cancel``, ``rm`` and ``sign-in-link``: the jobs on a server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from trainmon.cli.common import api, shown, url_option
from trainmon.client import ClientError
from trainmon.presentation import format_elapsed, format_loss, format_steps
from trainmon.settings import SettingsError, parse_duration
from trainmon.terminal import terminal_text

STATUS_STYLE = {
    "pending": "dim",
    "queued": "dim",
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
}


def job_row(job: dict[str, Any], now: float) -> list[str]:
    status = shown(job["status"])
    if job.get("cancelRequested") and status == "running":
        status += " (cancelling)"
    if job.get("stale"):
        status += " (stale)"
    return [
        shown(job["id"]),
        shown(job["name"]),  # a name like "run[/x]" is text, not Rich markup
        f"[{STATUS_STYLE.get(job['status'], '')}]{status}[/]",
        f"{job['progress']:.1f}%",
        format_steps(job.get("currentStep"), job.get("totalSteps")),
        format_loss(job.get("currentLoss"))[0],
        format_elapsed(job.get("startedAt"), now, job.get("finishedAt")),
    ]


def print_jobs(jobs: list[dict[str, Any]], console: Console) -> None:
    table = Table(box=None, header_style="bold")
    for column in ("ID", "NAME", "STATUS", "PROGRESS", "STEPS", "LOSS", "ELAPSED"):
        table.add_column(column, overflow="fold")
    now = time.time()
    for job in jobs:
        table.add_row(*job_row(job, now))
    console.print(table)


def since_param(text: str, now: float) -> str:
    """``--since``: a duration back from now (``24h``, ``7d``, ``90m``) or an ISO date/time,
    as the API's ``createdSince``; ``click.BadParameter`` for anything else."""
    try:
        seconds = parse_duration(text)
    except SettingsError:
        try:
            datetime.fromisoformat(text.strip())
        except ValueError:
            raise click.BadParameter(
                f"{text!r}: use a duration back from now (24h, 7d, 90m) or an ISO date"
            ) from None
        return text.strip()
    return datetime.fromtimestamp(now - seconds, UTC).isoformat()


@click.command("ls")
@click.option(
    "--status",
    default=None,
    help="Comma list of statuses (pending, queued, running, completed, failed, cancelled), "
    "or active, or finished.",
)
@click.option("--tag", "tags", multiple=True, help="Jobs with this tag (repeatable: all of them).")
@click.option("--q", "text", default=None, help="Text in the name, id, tags or error (any case).")
@click.option("--since", default=None, help="Created since: 24h, 7d, 90m, or an ISO date.")
@click.option(
    "--sort",
    default="-createdAt",
    show_default=True,
    help="createdAt, startedAt, finishedAt, duration, name, status, progress or loss; a "
    "leading - sorts descending.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 500))
@click.option("--all", "every", is_flag=True, help="Every matching job, page after page.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@url_option
def ls_command(
    status: str | None,
    tags: tuple[str, ...],
    text: str | None,
    since: str | None,
    sort: str,
    limit: int,
    every: bool,
    as_json: bool,
    url: str | None,
) -> None:
    """List jobs, newest first (or as --sort says)."""
    params: dict[str, Any] = {"limit": 500 if every else limit, "sort": sort}
    for name, value in (("status", status), ("q", text), ("tag", list(tags))):
        if value:
            params[name] = value
    if since:
        params["createdSince"] = since_param(since, time.time())
    found: list[dict[str, Any]] = []
    with api(url) as client:
        while True:
            page = client.json("GET", "/api/training/jobs", params=params)
            found += page["jobs"]
            if not every or not page["nextCursor"]:
                break
            params["cursor"] = page["nextCursor"]
    if as_json:
        click.echo(json.dumps({**page, "jobs": found} if every else page, indent=2))
        return
    if not found:
        filtered = any(params.get(k) for k in ("status", "q", "tag", "createdSince"))
        click.echo(
            "No jobs match."
            if filtered
            else "No jobs. Start one with: trainmon run -- python train.py"
        )
        return
    console = Console()
    print_jobs(found, console)
    total = f"{page['total']:,}" + ("" if page.get("totalExact", True) else "+")
    if not every and len(found) < page["total"]:
        console.print(f"[dim]{len(found)} of {total} jobs shown (--all for every one)[/]")


@click.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@url_option
def status_command(job_id: str, as_json: bool, url: str | None) -> None:
    """Show one job."""
    with api(url) as client:
        job = client.json("GET", f"/api/training/jobs/{job_id}")
    if as_json:
        click.echo(json.dumps(job, indent=2))
        return
    console = Console()
    print_jobs([job], console)
    if job.get("error"):
        console.print(f"[red]error:[/] {shown(job['error'], keep_layout=True)}", highlight=False)


@click.command("cancel")
@click.argument("job_id")
@url_option
def cancel_command(job_id: str, url: str | None) -> None:
    """Cancel a job: a pending or queued one ends at once, a running one is stopped."""
    with api(url) as client:
        job = client.json("POST", f"/api/training/jobs/{job_id}/cancel")
    if job["status"] == "cancelled":
        click.echo(f"{job_id} cancelled")
    else:
        click.echo(f"{job_id}: cancel requested; the training is being stopped")


@click.command("rm")
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
@url_option
def rm_command(job_ids: tuple[str, ...], url: str | None) -> None:
    """Delete finished jobs with their points and logs (an active one: cancel it first)."""
    failed = 0
    with api(url) as client:
        for job_id in job_ids:
            try:
                client.json("DELETE", f"/api/training/jobs/{job_id}")
            except ClientError as exc:
                failed += 1
                click.echo(f"{terminal_text(job_id)}: {terminal_text(str(exc))}", err=True)
            else:
                click.echo(f"{job_id} deleted")
    if failed:
        raise click.ClickException(f"{failed} of {len(job_ids)} jobs not deleted")


@click.command("sign-in-link")
@url_option
def sign_in_link_command(url: str | None) -> None:
    """Print a one-time link that signs a browser in to the dashboard (to cancel from it)."""
    with api(url) as client:
        link = client.json("POST", "/api/auth/sign-in-links")
        click.echo(client.url + link["path"])
