"""``trainmon demo``: the server with a stream of small example trainings."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from trainmon.cli.common import settings_errors
from trainmon.cli.serve import PORT, serve
from trainmon.client import ApiClient, ClientError


@dataclass(frozen=True, slots=True)
class DemoJob:
    name: str
    script: str
    args: tuple[str, ...] = ()
    grace: float = 10.0


DEMO_JOBS: tuple[DemoJob, ...] = (
    DemoJob("logreg (SDK)", "sdk_logreg.py", ("--steps", "400")),
    DemoJob("mlp (tqdm only)", "tqdm_mlp.py", ("--epochs", "30")),
    DemoJob("mlp, bad batch", "fails_partway.py"),
    DemoJob("linreg, lr=8 (diverges)", "diverges_nan.py"),
    DemoJob("long run (cancel me)", "checkpoint_on_sigterm.py", ("--steps", "3000"), 5.0),
    DemoJob("logreg, more steps (SDK)", "sdk_logreg.py", ("--steps", "1200")),
)
DEMO_ACTIVE = 4  # keep about this many jobs queued or running
DEMO_KEEP = 20  # finished demo jobs kept; older ones are deleted (unless --keep)


def examples_dir() -> Path | None:
    """Packaged examples (``trainmon/examples``), else the source checkout's ``examples/``."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "examples", here.parents[3] / "examples"):
        if (candidate / "tqdm_mlp.py").is_file():
            return candidate
    return None


def demo_body(
    job: DemoJob, examples: Path, workdir: Path, python: str = sys.executable
) -> dict[str, Any]:
    return {
        "name": job.name,
        "command": {
            "argv": [python, str(examples / job.script), *job.args],
            "cwd": str(workdir),  # checkpoints and the like land here, not in the examples
            "env": {},
        },
        "graceSeconds": job.grace,
        "tags": ["demo"],
    }


def prune_demo(client: ApiClient, keep: int) -> list[str]:
    """Delete the demo's finished jobs but the ``keep`` (at least 1) that ended last; the ids
    deleted. Two hours of demo piled up ~470 finished jobs before: a demo, not a pile."""
    params: dict[str, Any] = {"status": "finished", "tag": "demo", "sort": "-finishedAt"}
    page = client.json("GET", "/api/training/jobs", params={**params, "limit": max(1, keep)})
    doomed: list[str] = []
    while page["nextCursor"]:
        more = {**params, "limit": 500, "cursor": page["nextCursor"]}
        page = client.json("GET", "/api/training/jobs", params=more)
        doomed += [job["id"] for job in page["jobs"]]
    for job_id in doomed:
        client.json("DELETE", f"/api/training/jobs/{job_id}")
    return doomed


def feed_demo(
    client: ApiClient,
    examples: Path,
    workdir: Path,
    stop: threading.Event,
    period: float = 2.0,
    keep: int | None = DEMO_KEEP,
) -> None:
    """Submit the demo mix, then top it up whenever fewer than ``DEMO_ACTIVE`` jobs are
    active, so the dashboard stays lively; finished ones beyond ``keep`` are deleted."""
    jobs = itertools.cycle(DEMO_JOBS)
    for _ in DEMO_JOBS:
        client.json("POST", "/api/training/jobs", json=demo_body(next(jobs), examples, workdir))
    while not stop.wait(period):
        try:
            active = client.json("GET", "/api/training/jobs", params={"status": "active"})
            if int(active["total"]) < DEMO_ACTIVE:
                body = demo_body(next(jobs), examples, workdir)
                client.json("POST", "/api/training/jobs", json=body)
            if keep is not None:
                prune_demo(client, keep)
        except ClientError as exc:
            click.echo(f"demo: {exc}", err=True)


def stop_demo_trainings(data_dir: Path) -> int:
    """SIGKILL the sessions of the demo's supervisors (their trainings included): they outlive
    a server by design, but not a demo. The next demo marks those jobs failed."""
    from trainmon.runner import proc

    needle = f"--data-dir\0{data_dir}\0".encode()
    stopped = 0
    for stat in proc.all_stats():
        try:
            with open(f"/proc/{stat.pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if b"trainmon.runner.supervisor" in cmdline and needle in cmdline + b"\0":
            for member in proc.live_members(sid=stat.pid):
                proc.signal_pids([member.pid], signal.SIGKILL)
            stopped += 1
    return stopped


@click.command("demo")
@PORT.decorator()
@click.option(
    "--max-concurrent",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Jobs run at once (the rest wait, queued).",
)
@click.option(
    "--keep",
    is_flag=True,
    help=f"Keep every finished demo job (default: the last {DEMO_KEEP}, older ones deleted).",
)
def demo_command(port: int | None, max_concurrent: int, keep: bool) -> None:
    """Start the server with a stream of small example trainings (numpy, seconds each) so you
    can watch queued, running, completed and failed jobs live, and cancel one. The demo keeps
    its jobs in a data directory of its own (demo/ in the usual one); Ctrl-C ends it all."""
    from trainmon.local import data_dir
    from trainmon.runner.logfile import private_dirs
    from trainmon.settings import build_settings, resolve_token

    examples = examples_dir()
    if examples is None:
        raise click.ClickException("the examples are not installed (run from a source checkout)")
    home = data_dir()
    demo_dir = home / "demo"
    with settings_errors():
        # The usual token, so `trainmon cancel` from another terminal works on demo jobs too.
        token, source = resolve_token(dict(os.environ), home)
        env = {**os.environ, "TRAINMON_DATA_DIR": str(demo_dir), "TRAINMON_TOKEN": token}
        env.pop("TRAINMON_DATABASE_URL", None)
        settings = build_settings(port=port, max_concurrent=max_concurrent, env=env)
    settings = dataclasses.replace(settings, token_source=source)
    workdir = demo_dir / "work"
    private_dirs(workdir)
    stop = threading.Event()

    def on_ready() -> None:
        client = ApiClient(settings.url, settings.token)

        def feed() -> None:
            try:
                feed_demo(client, examples, workdir, stop, keep=None if keep else DEMO_KEEP)
            except ClientError as exc:
                click.echo(f"demo: {exc}", err=True)
            finally:
                client.close()

        threading.Thread(target=feed, name="demo-feed", daemon=True).start()
        click.echo("demo: submitting example trainings; Ctrl-C stops the demo")

    try:
        serve(settings, on_ready)
    finally:
        stop.set()
        stop_demo_trainings(demo_dir)
