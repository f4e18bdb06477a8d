"""``trainmon sync`` with a damaged journal: every intact record reaches a real server, only the
bad bytes are skipped, they are reported (count and byte ranges) with a non-zero exit, and the
journal is quarantined instead of deleted. A torn last line (a crash mid-write) is normal."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from live import LiveServer
from sdk_helpers import FakeClock, FakeServer, client_env, history_steps, stop_server
from trainmon.sdk.flusher import FlushConfig, Flusher
from trainmon.sdk.journal import QUARANTINE, decode_line, leftover_journals
from trainmon.sdk.values import Point

JOB = "c0ffee000001"
BATCHES = 20
PER_BATCH = 250


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "server-data", executor=False)
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    stop_server(live)


def write_journal(folder: Path) -> Path:
    """A real SDK journal: the flusher, its server away, spills creation, batches and status."""
    offline = FakeServer(down=True)
    clock = FakeClock()
    buffer: list[Point] = []
    flusher = Flusher(
        buffer,
        offline.transport(),
        job_id=JOB,
        reporter="sdk-sync",
        url="http://offline",
        journal_path=folder / f"{JOB}-sdk-sync.jsonl",
        create_body={"id": JOB, "name": "damaged", "config": {}, "tags": []},
        clock=clock,
        sleep=clock.advance,
        warn=lambda message: None,
        config=FlushConfig(memory_limit=1, max_batch_points=PER_BATCH),
    )
    for step in range(BATCHES * PER_BATCH):
        buffer.append((step, 1.0 + step, 0.5, {"acc": float(step)}))
    assert flusher.close("completed", None, 0.0) == BATCHES * PER_BATCH
    (path,) = leftover_journals(folder)
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def steps_in(line: bytes) -> list[int]:
    return [p["step"] for p in json.loads(line.partition(b" ")[2])["points"]]


def sync(server: LiveServer, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = client_env(server, TRAINMON_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "trainmon.cli", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["corrupt-line", "garbage-glued", "invalid-utf8"])
def test_damage_in_the_middle_is_skipped_reported_and_quarantined(
    server: LiveServer, tmp_path: Path, damage: str
) -> None:
    data = tmp_path / "client-data"
    path = write_journal(data / "journal")
    lines = lines_of(path)
    middle = len(lines) // 2
    expected = list(range(BATCHES * PER_BATCH))
    before = sum(len(line) for line in lines[:middle])
    if damage == "corrupt-line":  # a whole bad line between two records
        bad = b'/api/training/jobs/x/progress {"reporter": "sdk-sync", "seq": 9\n'
        lines.insert(middle, bad)
    elif damage == "garbage-glued":  # bytes with no newline, glued in front of a record
        bad = b"\x00\xff garbage \xfe\x80"
        lines[middle] = bad + lines[middle]
    else:  # bytes inside one record flipped to invalid UTF-8: that record is beyond repair
        bad = lines[middle]
        lost = steps_in(bad)
        lines[middle] = bad[:60] + b"\xff\xfe\xc3" + bad[63:]
        expected = [s for s in expected if s not in set(lost)]
    path.write_bytes(b"".join(lines))

    done = sync(server, data)
    assert done.returncode != 0, done
    assert "sync incomplete" in done.stderr, done.stderr
    assert "skipped 1 damaged range(s)" in done.stderr, done.stderr
    end = before + len(bad)
    assert f"byte offsets {before}-{end}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    assert sorted(history_steps(server.url, JOB)) == expected  # every intact point arrived
    assert leftover_journals(data / "journal") == []
    kept = data / "journal" / QUARANTINE / path.name
    assert kept.read_bytes() == b"".join(lines)  # moved whole, not deleted or rewritten
    assert (kept.parent.stat().st_mode & 0o777) == 0o700


@pytest.mark.timeout(120)
def test_torn_last_line_is_recovered_without_complaint(server: LiveServer, tmp_path: Path) -> None:
    data = tmp_path / "client-data"
    path = write_journal(data / "journal")
    lines = lines_of(path)
    torn = lines[2][: len(lines[2]) // 2]  # a crash halfway through writing one more batch
    path.write_bytes(b"".join(lines) + torn)

    done = sync(server, data)
    assert done.returncode == 0, done
    assert done.stderr == "", done.stderr
    assert f"uploaded {BATCHES * PER_BATCH:,} points" in done.stdout
    assert sorted(history_steps(server.url, JOB)) == list(range(BATCHES * PER_BATCH))
    assert not path.exists() and not (data / "journal" / QUARANTINE).exists()


def test_a_record_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = write_journal(tmp_path / "journal")
    last = lines_of(path)[-1]
    assert decode_line(last.rstrip(b"\n"), need_newline=False) is not None
    assert decode_line(last.rstrip(b"\n")) is None  # the live reader still waits for it
