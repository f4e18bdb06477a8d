"""The journal's pure reader (``scan``), its private file modes, and how a run's end is decided
from the way the process exits (``exit_outcome``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trainmon.sdk.journal import Entry, Journal, encode_line, scan
from trainmon.sdk.run import Ending, exit_outcome

A = encode_line(Entry("/api/training/jobs/j/progress", b'{"seq":1,"points":[{"step":1}]}', 1))
B = encode_line(Entry("/api/training/jobs/j/progress", b'{"seq":2,"points":[]}', 0))


@pytest.mark.parametrize(
    ("data", "records", "damaged", "torn"),
    [
        (A + B, 2, [], 0),
        (A + B[:10], 1, [], 10),  # a crash mid-write: expected, not damage
        (A + B.rstrip(b"\n"), 2, [], 0),  # only the newline missing: the record is whole
        (A + b"junk\n" + B, 2, [(len(A), len(A) + 5)], 0),
        (A + b"\xff\xfe" + B, 2, [(len(A), len(A) + 2)], 0),  # glued garbage, record kept
        (A + b"x\n\xff\n" + B, 2, [(len(A), len(A) + 4)], 0),  # adjacent damage merged
        (A + B + b"junk\n", 2, [(len(A + B), len(A + B) + 5)], 0),  # whole bad last line
    ],
)
def test_scan_keeps_every_intact_record(
    data: bytes, records: int, damaged: list[tuple[int, int]], torn: int
) -> None:
    found = scan(data, 0)
    assert len(found.records) == records
    assert found.damaged == damaged
    assert found.torn_tail == torn


def test_scan_offsets_are_file_offsets() -> None:
    found = scan(b"junk\n" + A, 100)
    assert found.damaged == [(100, 105)]
    assert found.records[0][1] == 105 + len(A)


def test_journal_folders_and_files_are_created_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask would leave 0755/0644 if modes were not given
    try:
        path = tmp_path / "data" / "journal" / "j.jsonl"
        journal = Journal(path)
        journal.append(Entry("/api/training/jobs/j/progress", b'{"seq":1,"points":[]}', 0))
        journal.peek()
        journal.pop()  # writes the .pos offset file
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (path.parent, path)}
        modes["pos"] = stat.S_IMODE(path.with_name("j.jsonl.pos").stat().st_mode)
        modes["data"] = stat.S_IMODE((tmp_path / "data").stat().st_mode)
        journal.close(delete_if_empty=False)
    finally:
        os.umask(old)
    assert modes == {"journal": 0o700, "j.jsonl": 0o600, "pos": 0o600, "data": 0o700}


@pytest.mark.parametrize(
    ("exc", "at_exit", "expected"),
    [
        (None, True, Ending("completed", exit_code=0)),
        (None, False, Ending("completed")),
        (SystemExit(0), False, Ending("completed", exit_code=0)),
        (SystemExit(None), True, Ending("completed", exit_code=0)),
        (SystemExit(3), False, Ending("failed", "exited with code 3", 3)),
        (SystemExit(True), True, Ending("failed", "exited with code 1", 1)),
        (SystemExit(2**40), True, Ending("failed", f"exited with code {2**40}", None)),
        (SystemExit("bad config"), False, Ending("failed", "bad config", 1)),
        (ValueError("boom"), True, Ending("failed", "ValueError: boom", 1)),
        (ValueError("boom"), False, Ending("failed", "ValueError: boom", None)),
        (
            KeyboardInterrupt(),
            True,
            Ending("failed", "KeyboardInterrupt", None, "SIGINT (KeyboardInterrupt)"),
        ),
    ],
)
def test_exit_outcome(exc: BaseException | None, at_exit: bool, expected: Ending) -> None:
    assert exit_outcome(exc, cancelled=False, at_exit=at_exit) == expected


def test_a_cancelled_run_ends_cancelled_unless_it_failed_by_its_exit_code() -> None:
    assert exit_outcome(None, cancelled=True, at_exit=True).status == "cancelled"
    assert exit_outcome(ValueError(), cancelled=True, at_exit=False).status == "cancelled"
