"""The supervisor as a real process against a fake progress endpoint: exit codes, bad
commands, cancel of a process tree, checkpoint on SIGTERM, a server that is down, log cap."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_helpers import EXAMPLES, PY, FakeServer, SupervisorRun, alive, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.stop()


@pytest.fixture
def runs() -> Iterator[list[SupervisorRun]]:
    started: list[SupervisorRun] = []
    yield started
    for run in started:
        run.close()


def supervise(
    runs: list[SupervisorRun], fake: FakeServer, tmp_path: Path, argv: list[str], **kw: object
) -> SupervisorRun:
    run = SupervisorRun(fake.url, tmp_path / "data", argv, **kw)  # type: ignore[arg-type]
    runs.append(run)
    return run


def final(fake: FakeServer, run: SupervisorRun) -> dict[str, object]:
    assert run.wait() == 0, run.output()
    end = fake.final()
    assert end is not None, run.output()
    return end


def test_completed_job_reports_progress_parsed_from_tqdm(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    run = supervise(
        runs,
        fake,
        tmp_path,
        [PY, str(EXAMPLES / "tqdm_mlp.py"), "--epochs", "3", "--delay", "0.01"],
    )
    end = final(fake, run)
    assert (end["status"], end["exitCode"], end["endReason"]) == ("completed", 0, "exit code 0")
    assert end["currentStep"] == end["totalSteps"] == 48
    assert isinstance(end["loss"], float)
    assert fake.progress(), "progress was reported while it ran"
    with fake.lock:
        batches = list(fake.batches)
    assert all(b["source"] == "output" and b["reporter"] == "supervisor" for b in batches)
    assert all(b["_auth"] == "Bearer tok" for b in batches)
    assert all(b["_path"] == "/api/training/jobs/job000000001/progress" for b in batches)
    seqs = [b["seq"] for b in batches]
    assert seqs == sorted(set(seqs))
    assert "final accuracy" in run.log()


def test_command_gets_the_sdk_environment(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    names = ("TRAINMON_URL", "TRAINMON_JOB_ID", "TRAINMON_TOKEN", "EXTRA")
    code = f"import os; print([os.environ.get(k) for k in {names!r}], os.getcwd())"
    run = supervise(runs, fake, tmp_path, [PY, "-c", code], env={"EXTRA": "x"}, cwd=str(tmp_path))
    assert final(fake, run)["status"] == "completed"
    assert f"['{fake.url}', 'job000000001', 'tok', 'x'] {tmp_path}" in run.log()


def test_failure_reports_exit_code_and_stderr_tail(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    run = supervise(runs, fake, tmp_path, [PY, str(EXAMPLES / "fails_partway.py"), "--delay", "0"])
    end = final(fake, run)
    assert (end["status"], end["exitCode"], end["endReason"]) == ("failed", 1, "exit code 1")
    error = str(end["error"])
    assert error.splitlines()[-1].startswith("ValueError: batch at step 120")
    assert "Traceback" in error


def test_killed_by_a_signal_is_failed_with_the_signal(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    run = supervise(runs, fake, tmp_path, [PY, "-c", "import os; os.kill(os.getpid(), 9)"])
    end = final(fake, run)
    assert (end["status"], end["exitCode"], end["endReason"]) == ("failed", None, "SIGKILL")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "command not found: /no/such/program"),
        ("not-executable", "command is not executable: "),
        ("no-cwd", "working directory not found: "),
        ("empty", "the command did not start"),
    ],
)
def test_bad_command_fails_with_the_reason(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path, case: str, reason: str
) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    argv, cwd = {
        "missing": (["/no/such/program"], None),
        "not-executable": ([str(script)], None),
        "no-cwd": (["true"], str(tmp_path / "gone")),
        "empty": ([], None),
    }[case]
    run = supervise(runs, fake, tmp_path, argv, cwd=cwd)
    end = final(fake, run)
    assert end["status"] == "failed" and end["exitCode"] is None
    if case != "empty":
        assert str(end["error"]).startswith(reason)
    assert str(end["endReason"]).startswith("not started: ")


def test_cancel_gives_a_trapping_script_its_grace_period(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "ckpt.npz"
    run = supervise(
        runs, fake, tmp_path,
        [PY, str(EXAMPLES / "checkpoint_on_sigterm.py"), "--checkpoint", str(checkpoint),
         "--save-seconds", "1.0", "--delay", "0.01", "--steps", "1000000"],
        grace=30,
    )  # fmt: skip
    wait_for(lambda: "ready:" in run.log(), "the training to start", output=run.output)
    fake.cancel = True
    end = final(fake, run)
    assert (end["status"], end["exitCode"]) == ("cancelled", 0), run.output()
    assert end["endReason"] == "exit code 0 after SIGTERM"
    assert checkpoint.exists()
    assert "checkpoint saved" in run.log()


def test_cancel_kills_a_tree_that_ignores_sigterm(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids.json"
    run = supervise(
        runs, fake, tmp_path,
        [PY, str(EXAMPLES / "ignore_sigterm_fork.py"), "--pids", str(pids_file)], grace=1,
    )  # fmt: skip
    wait_for(lambda: pids_file.exists() and pids_file.read_text(), "the PIDs", output=run.output)
    pids = json.loads(pids_file.read_text())
    everyone = [pids["main"], *pids["workers"], pids["grandchild"]]
    assert len(alive(everyone)) == 4
    fake.cancel = True
    end = final(fake, run)
    assert end["status"] == "cancelled"
    assert end["endReason"] == "SIGKILL: grace period of 1 s ran out"
    assert alive(everyone) == [], "no process of the job is left"


def test_final_report_waits_for_the_server(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    code = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)\nprint('bye')"
    run = supervise(runs, fake, tmp_path, [PY, "-c", code])
    wait_for(lambda: fake.batches, "a first heartbeat", output=run.output)
    fake.stop()
    go.touch()
    wait_for(lambda: "ended: completed" in run.log(), "the job to end", output=run.output)
    assert run.process.poll() is None, "the supervisor keeps its report while the server is down"
    fake.start()
    end = final(fake, run)
    assert end["status"] == "completed"
    assert "server unreachable" in run.log()


def test_supervisor_sigterm_stops_the_job(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    run = supervise(
        runs, fake, tmp_path, [PY, "-c", "import time; print('up', flush=True); time.sleep(600)"]
    )
    wait_for(lambda: "up" in run.log(), "the job to start", output=run.output)
    run.process.send_signal(signal.SIGTERM)
    end = final(fake, run)
    assert end["status"] == "failed"
    assert end["error"] == "the supervisor received SIGTERM; SIGTERM"


def test_server_side_end_stops_the_job(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    run = supervise(
        runs, fake, tmp_path, [PY, "-c", "import time; print('up', flush=True); time.sleep(600)"]
    )
    wait_for(lambda: "up" in run.log(), "the job to start", output=run.output)
    fake.status = "failed"
    assert run.wait() == 0
    assert "the server marked the job failed" in run.log()


def test_leftover_children_of_a_finished_job_are_stopped(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    pid_file = tmp_path / "child"
    code = (
        "import os, sys, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    os.setsid(); time.sleep(600); os._exit(0)\n"
        f"open({str(pid_file)!r}, 'w').write(str(pid))\n"
    )
    run = supervise(runs, fake, tmp_path, [PY, "-c", code])
    end = final(fake, run)
    assert end["status"] == "completed"
    assert alive([int(pid_file.read_text())]) == []
    assert "process(es) the job left behind" in run.log()


def test_log_is_capped_and_odd_output_is_harmless(
    fake: FakeServer, runs: list[SupervisorRun], tmp_path: Path
) -> None:
    code = (
        "import os, sys\n"
        "sys.stdout.buffer.write(os.urandom(50_000))\n"
        "bar = '\\r 3%| 3/100 [00:00<?, ?it/s]'\n"
        "for i in range(20_000): print(f'line {i:05d}', bar * (i % 2))\n"
        "print('the end')\n"
    )
    run = supervise(runs, fake, tmp_path, [PY, "-c", code], log_cap=100_000)
    end = final(fake, run)
    assert end["status"] == "completed"
    assert run.log_file.stat().st_size <= 100_000
    assert run.log().rstrip().endswith("[trainmon] ended: completed, exit code 0")
    assert "the end" in run.log()


def test_no_job_on_stdin_runs_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [PY, "-m", "trainmon.runner.supervisor", "--job-id", "abcdef123456", "--url",
         "http://127.0.0.1:9", "--data-dir", str(tmp_path)],
        input=b"", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert not (tmp_path / "logs").exists()
