"""The ``trainmon`` command. Its ``--help`` is the reference."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trainmon.client import ApiClient, ClientError
from trainmon.local import DEFAULT_PORT, SERVER_FILE
from trainmon.presentation import format_elapsed, format_loss, format_steps
from trainmon.runner.commands import demo_command, logs_command, run_command
from trainmon.settings import (
    LIMIT_VARIABLES,
    Settings,
    SettingsError,
    build_settings,
    is_loopback,
)
from trainmon.terminal import terminal_text

STATUS_STYLE = {
    "pending": "dim",
    "queued": "dim",
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
}

url_option = click.option(
    "--url",
    envvar="TRAINMON_URL",
    default=None,
    help="Server URL [env TRAINMON_URL; default: the local server].",
)


@contextlib.contextmanager
def api(url: str | None) -> Iterator[ApiClient]:
    """A client whose errors end the command with one line and exit code 1."""
    try:
        with ApiClient(url) as client:
            yield client
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trainmon")
def main() -> None:
    """trainmon: see every training you have running, live, and cancel the bad ones."""


def shown(text: str, *, keep_layout: bool = False) -> str:
    """Untrusted text for Rich: control characters made visible, ``[markup]`` kept literal."""
    return escape(terminal_text(text, keep_layout=keep_layout))


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


@main.command("ls")
@click.option(
    "--status",
    default=None,
    help="active, or one of pending, queued, running, completed, failed, cancelled.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@url_option
def ls_command(status: str | None, limit: int, as_json: bool, url: str | None) -> None:
    """List jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    with api(url) as client:
        page = client.json("GET", "/api/training/jobs", params=params)
    if as_json:
        click.echo(json.dumps(page, indent=2))
        return
    if not page["jobs"]:
        click.echo("No jobs. Start one with: trainmon run -- python train.py")
        return
    console = Console()
    print_jobs(page["jobs"], console)
    if page["total"] > len(page["jobs"]):
        console.print(f"[dim]{len(page['jobs'])} of {page['total']} jobs shown[/]")


@main.command("status")
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


@main.command("cancel")
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


@main.command("rm")
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


@main.command("sign-in-link")
@url_option
def sign_in_link_command(url: str | None) -> None:
    """Print a one-time link that signs a browser in to the dashboard (to cancel from it)."""
    with api(url) as client:
        link = client.json("POST", "/api/auth/sign-in-links")
        click.echo(client.url + link["path"])


@main.command("sync")
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


def write_server_file(settings: Settings) -> None:
    """Let local clients find a server started on a non-default port."""
    path = settings.data_dir / SERVER_FILE
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps({"url": settings.url, "pid": os.getpid()}))


def _exit_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve(settings: Settings, on_ready: Callable[[], None] | None = None) -> None:
    """Run the server in this process until interrupted."""
    import uvicorn

    from trainmon.server.app import create_app
    from trainmon.server.limits import (
        ConnectionLimits,
        connection_cap,
        guarded_protocol,
        raise_fd_limit,
    )
    from trainmon.server.routes.auth import sign_in_path

    app = create_app(settings)
    limits = ConnectionLimits(
        max_connections=connection_cap(settings.max_connections, raise_fd_limit()),
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )
    if limits.max_connections < settings.max_connections:
        click.echo(
            f"warning: at most {limits.max_connections} connections (the file-descriptor "
            f"limit), not {settings.max_connections}; raise ulimit -n to allow more",
            err=True,
        )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        server_header=False,
        http=guarded_protocol(limits),
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        # The app's own objects (tens of thousands) live for good: out of the collector's
        # reach, a big batch's allocations set off collections that scan only new objects
        # instead of full ones that hold the GIL (and every other report) for ~100 ms.
        gc.freeze()
        if server.started:
            write_server_file(settings)
            click.echo(f"trainmon is serving the dashboard at {settings.url}/", err=False)
            click.echo(
                f"sign in to cancel from a browser (one-time link): {settings.url}"
                f"{sign_in_path(app.state.sign_in_links)}"
            )
            click.echo(f"write token: {settings.token_source}")
            if settings.reads_need_token:
                click.echo(
                    f"bound to {settings.host}: reads need the token too "
                    f"(the page asks for it once; it is in {settings.data_dir / 'token'})"
                )
            if on_ready is not None:
                on_ready()

    server.startup = startup  # type: ignore[method-assign]
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the
    # handlers it found installed. Ours turn that into a clean exit that unwinds `finally`
    # blocks (here and in `trainmon demo`) instead of dying by the signal or "Aborted!".
    previous = {sig: signal.signal(sig, _exit_cleanly) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(OSError):
            (settings.data_dir / SERVER_FILE).unlink()


def serve_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--host",
            default=None,
            help="Address to bind [env TRAINMON_HOST; default "
            "127.0.0.1]. Beyond loopback, reads need the token too.",
        ),
        click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=None,
            help=f"Port [env TRAINMON_PORT; default {DEFAULT_PORT}].",
        ),
        click.option(
            "--db",
            default=None,
            help="Database URL (sqlite:///path or "
            "postgresql+psycopg://...) [env TRAINMON_DATABASE_URL; default: SQLite in "
            "the data directory].",
        ),
        click.option(
            "--allowed-host",
            "allowed_hosts",
            multiple=True,
            help="Extra Host header name to answer to (repeatable).",
        ),
        click.option(
            "--max-concurrent",
            type=click.IntRange(1, 1024),
            default=None,
            help="Jobs the local executor runs at once [default: GPUs, else 1].",
        ),
        click.option(
            "--heartbeat-interval",
            type=click.FloatRange(0.1, 3600),
            default=None,
            help="Seconds between reporter heartbeats; two missed = stale [10].",
        ),
        click.option(
            "--lost-contact-timeout",
            type=click.FloatRange(0.5, 86400),
            default=None,
            help="Seconds of silence before a running job fails [60].",
        ),
        click.option(
            "--max-metric-keys",
            type=click.IntRange(1, 1_000_000),
            default=None,
            help="Distinct metric names one job may report [env TRAINMON_MAX_METRIC_KEYS; 1000].",
        ),
        click.option(
            "--max-connections",
            type=click.IntRange(1, 1_000_000),
            default=None,
            help="Open HTTP connections; more get a 503 [env TRAINMON_MAX_CONNECTIONS; 1000, "
            "lowered to fit the file-descriptor limit].",
        ),
        click.option(
            "--max-event-streams",
            type=click.IntRange(1, 1_000_000),
            default=None,
            help="Open live-update (SSE) streams [env TRAINMON_MAX_EVENT_STREAMS; 100].",
        ),
        click.option(
            "--header-timeout",
            type=click.FloatRange(0.1, 3600),
            default=None,
            help="Seconds a client has to send a request's headers [env "
            "TRAINMON_HEADER_TIMEOUT; 10].",
        ),
        click.option(
            "--body-timeout",
            type=click.FloatRange(0.1, 3600),
            default=None,
            help="Seconds a client has to send a request's body [env TRAINMON_BODY_TIMEOUT; 30].",
        ),
        click.option(
            "--keep-alive-timeout",
            type=click.FloatRange(1, 3600),
            default=None,
            help="Seconds an idle connection stays open between requests [env "
            "TRAINMON_KEEP_ALIVE_TIMEOUT; 20].",
        ),
        click.option(
            "--executor/--no-executor",
            "run_executor",
            default=True,
            help="Run queued jobs here (off: monitor only, e.g. a second replica).",
        ),
        click.option(
            "--keep-days",
            type=click.FloatRange(0, min_open=True),
            default=None,
            help="Delete finished jobs (points and logs too) this many days after they end "
            "[env TRAINMON_KEEP_DAYS; default: keep forever].",
        ),
        click.option(
            "--pending-timeout",
            default=None,
            metavar="DURATION",
            help="Fail a pending job that never reports after this long: 24h, 30m, 90s or "
            "seconds [env TRAINMON_PENDING_TIMEOUT; default 24h].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextlib.contextmanager
def settings_errors() -> Iterator[None]:
    """A setting that cannot be used ends the command with one line."""
    try:
        yield
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def settings_from_options(**options: Any) -> Settings:
    with settings_errors():
        return build_settings(
            host=options["host"],
            port=options["port"],
            db=options["db"],
            allowed_hosts=tuple(options["allowed_hosts"]),
            heartbeat_interval=options["heartbeat_interval"],
            lost_contact_timeout=options["lost_contact_timeout"],
            max_concurrent=options["max_concurrent"],
            run_executor=options["run_executor"],
            limits={name: options.get(name) for name in LIMIT_VARIABLES},
            keep_days=options.get("keep_days"),
            pending_timeout=options.get("pending_timeout"),
        )


@main.command("serve")
@serve_options
def serve_command(**options: Any) -> None:
    """Serve the dashboard and the API, and run queued jobs."""
    settings = settings_from_options(**options)
    if not is_loopback(settings.host):
        click.echo(f"warning: binding {settings.host}; anyone who can reach it needs the token")
    serve(settings)


# The runner's commands live with the runner.
main.add_command(run_command, "run")
main.add_command(logs_command, "logs")
main.add_command(demo_command, "demo")

if __name__ == "__main__":
    main()
