"""A job's log file: written by its supervisor, capped by dropping the oldest part, read by the
server (the last lines, everything, or what came after a byte offset).

Offsets are *logical*: bytes written since the job started. When the writer trims the file it
records how many bytes were dropped in a small side file keyed by the new file's inode, so a
reader following a live log keeps its place across a trim. The side file is written before
the trimmed file takes the log's name, and a reader checks the inode it opened against it.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DEFAULT_CAP = 100 * 1024 * 1024
BLOCK = 64 * 1024
MAX_TAIL_BYTES = 16 * 1024 * 1024
MAX_CHUNK = 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# A log holds whatever the training printed (paths, hyperparameters, sometimes secrets): only
# its owner may read it. Created with these modes, never chmod-ed afterwards (no window), and
# without touching the umask, which the training inherits and its checkpoints obey.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dirs(path: Path) -> None:
    """Create ``path`` and whichever of its parents are missing, each mode 0700."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another writer
            os.mkdir(directory, PRIVATE_DIR)


def open_private(path: Path, mode: str) -> IO[bytes]:
    """``open(path, "ab" | "wb")``, but a file it creates is mode 0600 from the start."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    flags |= os.O_APPEND if mode == "ab" else os.O_TRUNC
    return os.fdopen(os.open(path, flags, PRIVATE_FILE), mode)


def log_path(data_dir: Path, job_id: str) -> Path:
    if not _SAFE_ID.match(job_id):  # the API only makes such ids; never leave logs/
        raise ValueError(f"not a job id: {job_id!r}")
    return data_dir / "logs" / f"{job_id}.log"


def diagnostics_path(log: Path) -> Path:
    """Where a job's supervisor writes its own crashes, beside the job's log."""
    return log.with_name(log.name.removesuffix(".log") + ".supervisor.log")


def remove_log(data_dir: Path, job_id: str) -> None:
    """Delete a job's log, the trim record and the supervisor's diagnostics beside it."""
    path = log_path(data_dir, job_id)
    for leftover in (path, _base_path(path), diagnostics_path(path)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _base_path(path: Path) -> Path:
    return path.with_name(path.name + ".base")


class LogWriter:
    """Appends bytes to ``path``; past ``cap`` bytes it keeps the last ``cap // 2`` (from a line
    start). Thread-safe: a supervisor writes stdout, stderr and its own notes."""

    def __init__(self, path: Path, cap: int = DEFAULT_CAP) -> None:
        self.path = path
        self.cap = max(cap, 2)
        private_dirs(path.parent)
        self._lock = threading.Lock()
        self._file = open_private(path, "ab")  # lives as long as the writer
        self._size = self._file.tell()
        self._base = _read_base(path, os.fstat(self._file.fileno()).st_ino)

    @property
    def written(self) -> int:
        """Logical size: every byte ever written, trimmed or not."""
        with self._lock:
            return self._base + self._size

    def write(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._file.write(data)
            self._file.flush()
            self._size += len(data)
            if self._size > self.cap:
                self._trim()

    def note(self, text: str) -> None:
        """A line from trainmon itself, marked so it is not taken for the job's output."""
        self.write(f"[trainmon] {text}\n".encode(errors="replace"))

    def _trim(self) -> None:
        keep = self.cap // 2
        with open(self.path, "rb") as old:
            old.seek(max(0, self._size - keep))
            tail = old.read()
        newline = tail.find(b"\n")
        if 0 <= newline < len(tail) - 1:
            tail = tail[newline + 1 :]
        dropped = self._size - len(tail)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open_private(tmp, "wb") as new:
            new.write(tail)
            inode = os.fstat(new.fileno()).st_ino
        base_tmp = tmp.with_name(tmp.name + ".base")
        with open_private(base_tmp, "wb") as side:
            side.write(json.dumps({"inode": inode, "base": self._base + dropped}).encode())
        os.replace(base_tmp, _base_path(self.path))
        os.replace(tmp, self.path)
        self._file.close()
        self._file = open_private(self.path, "ab")
        self._base += dropped
        self._size = len(tail)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _read_base(path: Path, inode: int) -> int:
    """Bytes dropped before the file with ``inode``; ``-1`` if the side file names another
    inode (a trim is half done: reopen)."""
    try:
        meta = json.loads(_base_path(path).read_text())
        if int(meta["inode"]) == inode:
            return int(meta["base"])
        return -1
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An open log with its logical start and the size it had when opened."""

    fd: int
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


def open_log(path: Path, attempts: int = 5) -> Snapshot | None:
    """Open the log consistently with its trim record; ``None`` if there is no log (yet)."""
    for attempt in range(attempts):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        base = _read_base(path, st.st_ino)
        if base >= 0:
            return Snapshot(fd, base, st.st_size)
        os.close(fd)
        time.sleep(0.005 * (attempt + 1))  # a trim is between its two renames
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    return Snapshot(fd, 0, os.fstat(fd).st_size)


def display_line(raw: bytes) -> str:
    """What a terminal would show of a line: its last ``\\r`` redraw, without ANSI codes."""
    text = _ANSI.sub("", raw.decode("utf-8", errors="replace"))
    if "\r" in text:
        parts = [p for p in text.split("\r") if p.strip()]
        text = parts[-1] if parts else ""
    return text


def tail_lines(path: Path, n: int) -> tuple[list[str], int]:
    """The last ``n`` lines as shown in a terminal, and the log's logical size."""
    snap = open_log(path)
    if snap is None:
        return [], 0
    try:
        return _tail(snap, n), snap.end
    finally:
        os.close(snap.fd)


def _tail(snap: Snapshot, n: int) -> list[str]:
    if n <= 0 or snap.size == 0:
        return []
    pos, data = snap.size, b""
    while pos > 0 and data.count(b"\n") <= n and len(data) < MAX_TAIL_BYTES:
        step = min(BLOCK, pos)
        pos -= step
        data = os.pread(snap.fd, step, pos) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [display_line(line) for line in lines[-n:]]


def read_after(path: Path, offset: int, limit: int = MAX_CHUNK) -> tuple[str, int, int]:
    """Text logged after logical ``offset`` (up to ``limit`` bytes, whole UTF-8 characters),
    the offset to ask for next, and the logical size. An offset inside a dropped part resumes
    at the oldest byte still kept."""
    snap = open_log(path)
    if snap is None:
        return "", max(0, offset), 0
    try:
        start = min(max(offset, snap.base), snap.end)
        data = os.pread(snap.fd, min(limit, snap.end - start), start - snap.base)
    finally:
        os.close(snap.fd)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)  # a character cut at the end comes next time
    held = len(decoder.getstate()[0])
    return text, start + len(data) - held, snap.end


def iter_all(path: Path) -> Iterator[bytes]:
    """The whole log as it was when opened; later writes and trims do not disturb it."""
    snap = open_log(path)
    if snap is None:
        return
    try:
        pos = 0
        while pos < snap.size:
            chunk = os.pread(snap.fd, min(BLOCK, snap.size - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            yield chunk
    finally:
        os.close(snap.fd)
