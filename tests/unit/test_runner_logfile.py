"""The capped log: keeps the tail, reads the last lines and follows across a trim."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainmon.runner.logfile import (
    LogWriter,
    display_line,
    iter_all,
    log_path,
    read_after,
    tail_lines,
)


def test_tail_of_missing_log_is_empty(tmp_path: Path) -> None:
    assert tail_lines(tmp_path / "nope.log", 10) == ([], 0)
    assert read_after(tmp_path / "nope.log", 5) == ("", 5, 0)
    assert list(iter_all(tmp_path / "nope.log")) == []


def test_tail_lines_and_size(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "a.log")
    for i in range(1000):
        writer.write(f"line {i}\n".encode())
    writer.write(b"partial")
    lines, size = tail_lines(writer.path, 3)
    assert lines == ["line 998", "line 999", "partial"]
    assert size == writer.written == writer.path.stat().st_size
    assert tail_lines(writer.path, 0)[0] == []
    writer.close()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"plain", "plain"),
        (b"\r 10%| 1/10\r 20%| 2/10", " 20%| 2/10"),
        (b"\x1b[31mred\x1b[0m", "red"),
        (b"done\r", "done"),
        (b"\xff\xfe bad utf-8", "\ufffd\ufffd bad utf-8"),
    ],
)
def test_display_line(raw: bytes, shown: str) -> None:
    assert display_line(raw) == shown


def test_cap_keeps_the_tail_from_a_line_start(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "b.log", cap=1000)
    for i in range(500):
        writer.write(f"line {i:04d}\n".encode())  # 10 bytes a line, 5000 in all
    size = writer.path.stat().st_size
    assert size <= 1000
    text = writer.path.read_text()
    assert text.startswith("line ") and text.endswith("line 0499\n")
    assert writer.written == 5000
    lines, logical = tail_lines(writer.path, 2)
    assert lines == ["line 0498", "line 0499"]
    assert logical == 5000
    writer.close()


def test_follow_across_trims_sees_every_byte_once(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "c.log", cap=400)
    got = []
    offset = 0
    for i in range(300):
        writer.write(f"{i}\n".encode())
        if i % 7 == 0:  # a follower that reads often enough to keep up
            text, offset, _ = read_after(writer.path, offset)
            got.append(text)
    text, offset, size = read_after(writer.path, offset)
    got.append(text)
    assert "".join(got) == "".join(f"{i}\n" for i in range(300))
    assert offset == size == writer.written
    writer.close()


def test_follower_that_fell_behind_resumes_at_oldest_kept(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "d.log", cap=100)
    for i in range(100):
        writer.write(f"{i:03d}\n".encode())
    text, offset, size = read_after(writer.path, 0)
    assert text.endswith("099\n") and len(text) <= 100
    assert offset == size == 400
    writer.close()


def test_read_after_keeps_split_characters_for_later(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "e.log")
    data = "héllo ✓\n".encode()
    writer.write(data[:2])  # "h" and half of "é"
    text, offset, _ = read_after(writer.path, 0)
    assert (text, offset) == ("h", 1)
    writer.write(data[2:])
    text, offset, _ = read_after(writer.path, offset)
    assert text == "éllo ✓\n"
    assert offset == len(data)
    writer.close()


def test_reopened_writer_continues_logical_size(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    first = LogWriter(path, cap=100)
    for _ in range(30):
        first.write(b"0123456789\n")
    first.close()
    again = LogWriter(path, cap=100)
    assert again.written == 330
    again.close()


def test_download_is_the_whole_file(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "g.log")
    payload = b"x" * 200_000 + b"\n"
    writer.write(payload)
    assert b"".join(iter_all(writer.path)) == payload
    writer.close()


def test_note_is_marked(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "h.log")
    writer.note("starting")
    assert writer.path.read_text() == "[trainmon] starting\n"
    writer.close()


@pytest.mark.parametrize("job_id", ["../etc", "a/b", "", ".hidden"])
def test_log_path_refuses_odd_ids(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(ValueError):
        log_path(tmp_path, job_id)
