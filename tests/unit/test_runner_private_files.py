"""Item 3 (the runner's part): job logs and the folders the runner makes under the data dir
are private from the moment they exist (0700 folders, 0600 files), while the training keeps
the umask it was started with, so its own checkpoints get the user's usual permissions."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_helpers import PY, FakeServer, SupervisorRun
from trainmon.runner.logfile import LogWriter

pytestmark = pytest.mark.timeout(60)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[int]:
    old = os.umask(0o022)  # the common default: new files 0644, folders 0755
    yield 0o022
    os.umask(old)


def test_log_writer_makes_private_folders_and_files(tmp_path: Path, usual_umask: int) -> None:
    path = tmp_path / "jobdata" / "logs" / "abcdef123456.log"
    writer = LogWriter(path, cap=1_000)
    for i in range(300):  # past the cap: a trim writes a new file and its side file
        writer.write(f"line {i:04d}\n".encode())
    writer.close()
    assert mode(tmp_path / "jobdata") == 0o700
    assert mode(path.parent) == 0o700
    files = sorted(path.parent.iterdir())
    assert [p.name for p in files] == ["abcdef123456.log", "abcdef123456.log.base"]
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_supervisor_logs_privately_and_the_training_keeps_its_umask(
    tmp_path: Path, usual_umask: int
) -> None:
    checkpoint = tmp_path / "ckpt.bin"
    code = (
        "import json, os, sys\n"
        "mask = os.umask(0); os.umask(mask)\n"
        "open(sys.argv[1], 'wb').write(b'weights')\n"
        "print(json.dumps({'umask': mask}))\n"
    )
    fake = FakeServer()
    run = SupervisorRun(fake.url, tmp_path / "jobdata", [PY, "-c", code, str(checkpoint)])
    try:
        assert run.wait() == 0, run.output()
    finally:
        run.close()
        fake.stop()
    end = fake.final()
    assert end is not None and end["status"] == "completed", run.output()
    assert mode(checkpoint) == 0o644, "the training's files follow the user's umask"
    reported = [json.loads(line) for line in run.log().splitlines() if line.startswith("{")]
    assert reported == [{"umask": usual_umask}]
    assert mode(tmp_path / "jobdata") == 0o700
    assert mode(run.log_file.parent) == 0o700
    assert mode(run.log_file) == 0o600
