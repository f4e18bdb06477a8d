"""``trainmon serve``: the dashboard, the API and the local executor in this process."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from trainmon.cli.common import settings_errors
from trainmon.local import DEFAULT_PORT, SERVER_FILE
from trainmon.runner.executor import DEFAULT_EXECUTOR, EXECUTORS
from trainmon.settings import LIMIT_VARIABLES, Settings, build_settings, is_loopback


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


@dataclass(frozen=True, slots=True)
class ServeOption:
    """One row of serve's options; every one but ``--no-executor`` defaults to None so that
    the environment, then the built-in default, decides (see ``build_settings``)."""

    decls: tuple[str, ...]
    help: str
    type: click.ParamType[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def decorator(self) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return click.option(
            *self.decls, type=self.type, help=self.help, **{"default": None, **self.extra}
        )


SECONDS = click.FloatRange(0.1, 3600)
COUNT = click.IntRange(1, 1_000_000)
# `trainmon demo` takes the same one.
PORT = ServeOption(
    ("--port",), f"Port [env TRAINMON_PORT; default {DEFAULT_PORT}].", click.IntRange(0, 65535)
)
SERVE_OPTIONS: tuple[ServeOption, ...] = (
    ServeOption(
        ("--host",),
        "Address to bind [env TRAINMON_HOST; default 127.0.0.1]. Beyond loopback, reads need "
        "the token too.",
    ),
    PORT,
    ServeOption(
        ("--db",),
        "Database URL (sqlite:///path or postgresql+psycopg://...) [env TRAINMON_DATABASE_URL; "
        "default: SQLite in the data directory].",
    ),
    ServeOption(
        ("--allowed-host", "allowed_hosts"),
        "Extra Host header name to answer to (repeatable).",
        extra={"multiple": True, "default": ()},
    ),
    ServeOption(
        ("--max-concurrent",),
        "Jobs the local executor runs at once [env TRAINMON_MAX_CONCURRENT; default: GPUs, "
        "else 1].",
        click.IntRange(1, 1024),
    ),
    ServeOption(
        ("--heartbeat-interval",),
        "Seconds between reporter heartbeats; two missed = stale [10].",
        SECONDS,
    ),
    ServeOption(
        ("--lost-contact-timeout",),
        "Seconds of silence before a running job fails [60].",
        click.FloatRange(0.5, 86400),
    ),
    ServeOption(
        ("--max-metric-keys",),
        "Distinct metric names one job may report [env TRAINMON_MAX_METRIC_KEYS; 1000].",
        COUNT,
    ),
    ServeOption(
        ("--max-connections",),
        "Open HTTP connections; more get a 503 [env TRAINMON_MAX_CONNECTIONS; 1000, lowered to "
        "fit the file-descriptor limit].",
        COUNT,
    ),
    ServeOption(
        ("--max-event-streams",),
        "Open live-update (SSE) streams [env TRAINMON_MAX_EVENT_STREAMS; 100].",
        COUNT,
    ),
    ServeOption(
        ("--max-pending-reports",),
        "Progress reports waiting to be stored; more get a 503 and are sent again [env "
        "TRAINMON_MAX_PENDING_REPORTS; 5000].",
        COUNT,
    ),
    ServeOption(
        ("--header-timeout",),
        "Seconds a client has to send a request's headers [env TRAINMON_HEADER_TIMEOUT; 10].",
        SECONDS,
    ),
    ServeOption(
        ("--body-timeout",),
        "Seconds a client has to send a request's body [env TRAINMON_BODY_TIMEOUT; 30].",
        SECONDS,
    ),
    ServeOption(
        ("--keep-alive-timeout",),
        "Seconds an idle connection stays open between requests [env "
        "TRAINMON_KEEP_ALIVE_TIMEOUT; 20].",
        click.FloatRange(1, 3600),
    ),
    ServeOption(
        ("--executor",),
        f"What runs the jobs launched with a command: {', '.join(sorted(EXECUTORS))} [env "
        f"TRAINMON_EXECUTOR; default {DEFAULT_EXECUTOR}].",
        extra={"metavar": "NAME"},
    ),
    ServeOption(
        ("--no-executor", "no_executor"),
        "Run no jobs here: monitor only (e.g. a second replica).",
        extra={"is_flag": True, "default": False},
    ),
    ServeOption(
        ("--keep-days",),
        "Delete finished jobs (points and logs too) this many days after they end [env "
        "TRAINMON_KEEP_DAYS; default: keep forever].",
        click.FloatRange(0, min_open=True),
    ),
    ServeOption(
        ("--pending-timeout",),
        "Fail a pending job that never reports after this long: 24h, 30m, 90s or seconds [env "
        "TRAINMON_PENDING_TIMEOUT; default 24h].",
        extra={"metavar": "DURATION"},
    ),
)


def serve_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(SERVE_OPTIONS):
        func = option.decorator()(func)
    return func


# Options that build_settings takes under the same name and as given.
PASSED_AS_IS = (
    "host", "port", "db", "heartbeat_interval", "lost_contact_timeout", "max_concurrent",
    "executor", "keep_days", "pending_timeout",
)  # fmt: skip


def settings_from_options(**options: Any) -> Settings:
    with settings_errors():
        return build_settings(
            **{name: options[name] for name in PASSED_AS_IS},
            allowed_hosts=tuple(options["allowed_hosts"]),
            run_executor=not options["no_executor"],
            limits={name: options[name] for name in LIMIT_VARIABLES},
        )


@click.command("serve")
@serve_options
def serve_command(**options: Any) -> None:
    """Serve the dashboard and the API, and run queued jobs."""
    settings = settings_from_options(**options)
    if not is_loopback(settings.host):
        click.echo(f"warning: binding {settings.host}; anyone who can reach it needs the token")
    serve(settings)
