"""``trainmon run`` and ``trainmon logs``: queue a command on the server, read its log."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from trainmon.cli.common import api, url_option
from trainmon.client import ApiClient
from trainmon.terminal import terminal_text

TERMINAL = ("completed", "failed", "cancelled")
POLL_SECONDS = 0.3


def parse_env_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; ``click.BadParameter`` for a pair without ``=``."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


def resolve_argv(argv: Sequence[str], which: Any = shutil.which) -> list[str]:
    """The command with its program resolved on *this* shell's PATH: the server that runs it
    may have another PATH (no virtualenv activated). Paths and unknown names are kept as typed
    (an unknown one then fails on the server with "command not found")."""
    args = list(argv)
    if args and os.sep not in args[0]:
        found = which(args[0])
        if found:
            args[0] = os.path.abspath(found)
    return args


def exit_code_of(job: dict[str, Any]) -> int:
    """What ``trainmon run --follow`` exits with: the job's exit code, else 0 only if it
    completed."""
    code = job.get("exitCode")
    if isinstance(code, int) and not isinstance(code, bool):
        return code if 0 <= code < 256 else 1
    return 0 if job.get("status") == "completed" else 1


def default_name(argv: Sequence[str]) -> str:
    shown = [Path(argv[0]).name, *argv[1:]] if argv else []
    name = " ".join(shown)
    return name if len(name) <= 80 else name[:79] + "…"


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    offset: int


def follow_log(
    client: ApiClient, job_id: str, offset: int = 0, poll: float = POLL_SECONDS
) -> Iterator[Chunk | dict[str, Any]]:
    """Yield the log's text as it grows, then the finished job (a dict) once it has ended and
    its log is drained."""
    path = f"/api/training/jobs/{job_id}"
    while True:
        data = client.json("GET", f"{path}/logs", params={"offset": offset})
        text, offset = str(data.get("text", "")), int(data.get("offset", offset))
        if text:
            yield Chunk(text, offset)
            continue
        job: dict[str, Any] = client.json("GET", path)
        if job.get("status") in TERMINAL:
            # The supervisor reports the end after its last write: one more read drains it.
            data = client.json("GET", f"{path}/logs", params={"offset": offset})
            if data.get("text"):
                yield Chunk(str(data["text"]), int(data.get("offset", offset)))
            yield job
            return
        time.sleep(poll)  # a terminal user waiting on a live log: plain polling is enough


def stream(client: ApiClient, job_id: str, offset: int = 0, *, raw: bool = True) -> int:
    """Print the log as it grows (``raw=False``: control characters made visible); the job's
    exit code once it ends."""
    try:
        for item in follow_log(client, job_id, offset):
            if isinstance(item, Chunk):
                sys.stdout.write(item.text if raw else terminal_text(item.text, keep_layout=True))
                sys.stdout.flush()
            else:
                status = item.get("status")
                reason = terminal_text(item.get("endReason") or item.get("error") or "")
                click.echo(
                    f"trainmon: job {job_id} {status}" + (f" ({reason})" if reason else ""),
                    err=True,
                )
                return exit_code_of(item)
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; the job goes on (trainmon logs {job_id} -f)", err=True)
        return 130
    return 1


# Options stop at the program's name (its own options are its business), but one that comes
# before it and is not ours is a typo: an error, not the command (`run --gpus 1 -- ...`).
@click.command("run", context_settings={"allow_interspersed_args": False})
@click.option("--name", default=None, help="Job name [default: the command].")
@click.option(
    "--total-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Steps the training will take, if the output does not say.",
)
@click.option(
    "--grace",
    type=click.FloatRange(0, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL when the job is cancelled.",
)
@click.option(
    "--cwd",
    type=click.Path(file_okay=False),
    default=None,
    help="Working directory [default: the current one].",
)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Environment variable for the command (repeatable).",
)
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option(
    "--follow", "-f", is_flag=True, help="Stream the log and exit with the job's exit code."
)
@url_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run_command(
    name: str | None,
    total_steps: int | None,
    grace: float,
    cwd: str | None,
    env_pairs: tuple[str, ...],
    tags: tuple[str, ...],
    follow: bool,
    url: str | None,
    command: tuple[str, ...],
) -> None:
    """Queue COMMAND on the server's local executor and print the job's id.

    \b
        trainmon run --name mlp -- python train.py --lr 3e-4
        trainmon run -f -- python train.py     # stream the log, exit with its code
    """
    if not command:
        raise click.UsageError("no command given: trainmon run [OPTIONS] -- COMMAND [ARGS]...")
    env = parse_env_pairs(env_pairs)
    argv = resolve_argv(command)
    body: dict[str, Any] = {
        "name": name or default_name(command),
        "command": {"argv": argv, "cwd": os.path.abspath(cwd or os.getcwd()), "env": env},
        "graceSeconds": grace,
    }
    if total_steps is not None:
        body["totalSteps"] = total_steps
    if tags:
        body["tags"] = list(tags)
    with api(url) as client:
        job = client.json("POST", "/api/training/jobs", json=body)
        click.echo(job["id"])
        if not follow:
            return
        code = stream(client, job["id"])
    sys.exit(code)


@click.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
@click.option(
    "--tail",
    "-n",
    type=click.IntRange(0, 10_000),
    default=None,
    help="Only the last N lines [default: the whole log].",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Print the log's bytes as written, terminal escapes and all. Without it, control "
    "characters other than newline and tab are shown in cat -v notation (ESC as ^[, CR as ^M, "
    "BEL as ^G, C1 controls as M-^X), so a log cannot drive your terminal.",
)
@url_option
def logs_command(job_id: str, follow: bool, tail: int | None, raw: bool, url: str | None) -> None:
    """Print a runner job's log (stdout and stderr of its command)."""
    with api(url) as client:
        base = f"/api/training/jobs/{job_id}/logs"
        if tail is not None:
            data = client.json("GET", base, params={"tail": tail})
            for line in data["lines"]:
                click.echo(line if raw else terminal_text(line, keep_layout=True))
            if not follow:
                return
            code = stream(client, job_id, int(data["size"]), raw=raw)
        elif follow:
            code = stream(client, job_id, raw=raw)
        else:
            response = client.request("GET", f"{base}/download")
            text = response.text
            sys.stdout.write(text if raw else terminal_text(text, keep_layout=True))
            sys.stdout.flush()
            return
    sys.exit(code)
