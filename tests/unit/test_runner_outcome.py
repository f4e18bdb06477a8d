"""Pure pieces of the runner: how a job ended, why it did not start, the default concurrency,
and the CLI's little helpers."""

from __future__ import annotations

import signal
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from trainmon.cli.run import (
    default_name,
    exit_code_of,
    parse_env_pairs,
    resolve_argv,
    run_command,
)
from trainmon.runner.gpus import choose_max_concurrent, parse_gpu_list
from trainmon.runner.outcome import Outcome, decide, error_tail, launch_error_text

TERM, KILL = -signal.SIGTERM, -signal.SIGKILL


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"returncode": 0}, Outcome("completed", 0, None, "exit code 0")),
        (
            {"returncode": 1, "stderr_tail": "ValueError: boom"},
            Outcome("failed", 1, "ValueError: boom", "exit code 1"),
        ),
        ({"returncode": 3}, Outcome("failed", 3, "exit code 3", "exit code 3")),
        ({"returncode": KILL}, Outcome("failed", None, "killed by SIGKILL", "SIGKILL")),
        (
            {"returncode": -signal.SIGSEGV, "stderr_tail": "Fatal Python error"},
            Outcome("failed", None, "Fatal Python error\nkilled by SIGSEGV", "SIGSEGV"),
        ),
        (
            {"returncode": TERM, "cancelled": True},
            Outcome("cancelled", None, None, "SIGTERM after cancel"),
        ),
        (
            {"returncode": 0, "cancelled": True},
            Outcome("cancelled", 0, None, "exit code 0 after SIGTERM"),
        ),
        (
            {"returncode": KILL, "cancelled": True, "killed": True},
            Outcome("cancelled", None, None, "SIGKILL: grace period of 10 s ran out"),
        ),
        (
            {"returncode": TERM, "cancelled": True, "killed": True, "grace": 2.5},
            Outcome(
                "cancelled",
                None,
                None,
                "SIGTERM after cancel; SIGKILL to what was left: grace period of 2.5 s ran out",
            ),
        ),
        (
            {"returncode": TERM, "stopped_by": "the supervisor received SIGTERM"},
            Outcome(
                "failed",
                None,
                "the supervisor received SIGTERM; SIGTERM",
                "the supervisor received SIGTERM; SIGTERM",
            ),
        ),
        (
            {"returncode": None, "launch_error": "command not found: nope"},
            Outcome(
                "failed", None, "command not found: nope", "not started: command not found: nope"
            ),
        ),
    ],
)
def test_decide(kwargs: dict[str, object], expected: Outcome) -> None:
    args: dict[str, object] = {"grace": 10.0, **kwargs}
    assert decide(**args) == expected  # type: ignore[arg-type]


def test_error_tail_keeps_the_last_lines_as_shown() -> None:
    stderr = b"".join(f"noise {i}\n".encode() for i in range(100))
    stderr += b"Traceback (most recent call last):\n\r 10%| 1/10 [00:00<?, ?it/s]\n"
    stderr += b'  File "t.py", line 1\r\n\x1b[31mValueError: boom\x1b[0m\n\n'
    tail = error_tail(stderr, lines=3)
    assert tail.splitlines() == [
        "Traceback (most recent call last):",
        '  File "t.py", line 1',
        "ValueError: boom",
    ]
    assert len(error_tail(b"x" * 10_000, chars=100)) == 100


@pytest.mark.parametrize(
    ("argv", "cwd", "exc", "text"),
    [
        (["nope"], None, FileNotFoundError(2, "gone", "nope"), "command not found: nope"),
        (
            ["x"],
            "/gone",
            FileNotFoundError(2, "gone", "/gone"),
            "working directory not found: /gone",
        ),
        (["./t"], None, PermissionError(13, "denied", "./t"), "command is not executable: ./t"),
        (
            ["x"],
            "/f",
            NotADirectoryError(20, "no", "/f"),
            "working directory is not a directory: /f",
        ),
        (["x"], None, OSError(8, "Exec format error", "x"), "could not start x: Exec format error"),
        ([], None, FileNotFoundError(2, "x"), "empty command"),
    ],
)
def test_launch_error_text(argv: list[str], cwd: str | None, exc: OSError, text: str) -> None:
    assert launch_error_text(argv, cwd, exc) == text


NVIDIA_SMI = """GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-2)
  MIG 1g.10gb     Device  0: (UUID: MIG-3)
"""


@pytest.mark.parametrize(
    ("output", "gpus", "concurrent"),
    [(NVIDIA_SMI, 2, 2), ("", 0, 1), (None, 0, 1), ("No devices were found", 0, 1)],
)
def test_gpus_and_default_concurrency(output: str | None, gpus: int, concurrent: int) -> None:
    assert parse_gpu_list(output) == gpus
    assert choose_max_concurrent(gpus) == concurrent


def test_parse_env_pairs() -> None:
    assert parse_env_pairs(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(click.BadParameter):
        parse_env_pairs(["novalue"])


def test_resolve_argv_uses_this_path() -> None:
    fake_which = {"python": "/venv/bin/python"}.get
    assert resolve_argv(["python", "t.py"], fake_which) == ["/venv/bin/python", "t.py"]
    assert resolve_argv(["./t.sh"], fake_which) == ["./t.sh"]
    assert resolve_argv(["unknown"], fake_which) == ["unknown"]
    assert resolve_argv([], fake_which) == []


@pytest.mark.parametrize(
    ("job", "code"),
    [
        ({"status": "completed", "exitCode": 0}, 0),
        ({"status": "failed", "exitCode": 3}, 3),
        ({"status": "failed", "exitCode": None}, 1),
        ({"status": "cancelled", "exitCode": None}, 1),
        ({"status": "failed", "exitCode": 300}, 1),
    ],
)
def test_exit_code_of(job: dict[str, object], code: int) -> None:
    assert exit_code_of(job) == code


def test_default_name() -> None:
    assert default_name(["/usr/bin/python", "train.py"]) == "python train.py"
    assert len(default_name(["x" * 200])) == 80


def test_run_without_command_prints_usage(tmp_path: Path) -> None:
    result = CliRunner().invoke(run_command, [])
    assert result.exit_code == 2
    assert "Usage:" in result.output
    assert "no command given" in result.output


def test_run_with_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(run_command, ["--url", "http://127.0.0.1:9", "--", "true"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the trainmon server")


@pytest.mark.parametrize("cancelled", [True, False])
def test_a_started_command_is_never_recorded_not_started(cancelled: bool) -> None:
    """Item 15: a missing status of a process that ran is "unknown", not "not started"."""
    outcome = decide(returncode=None, started=True, grace=1, cancelled=cancelled)
    assert not outcome.end_reason.startswith("not started")
    assert outcome.status == ("cancelled" if cancelled else "failed")
    assert "unknown exit status" in outcome.end_reason
