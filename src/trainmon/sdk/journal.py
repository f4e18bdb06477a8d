"""Append-only on-disk queue of requests the server has not acknowledged yet.

One file per (job, reporter) under ``<data dir>/journal/``: each line is ``<path> <json body>``,
exactly the request to send, so a batch keeps its sequence number and a resend is applied once.
``<file>.pos`` holds the byte offset of the first unacknowledged line; it may lag behind (a
crash between a send and its update) because the server deduplicates what is sent again.
The owning process holds an exclusive ``flock`` so ``trainmon sync`` leaves a live run alone.

Points are private (they may name a customer's data): folders are made 0700 and files 0600
at creation, never chmod-ed afterwards, so there is no moment they are readable by others.
A journal ``sync`` could not read whole is moved to ``journal/quarantine/``, never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trainmon import local
from trainmon.sdk.transport import HttpTransport, Transport, TransportError
from trainmon.wire import Kind, kind_of

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; sync may then race a live run (harmless)
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".jsonl"
QUARANTINE = "quarantine"
DIR_MODE = 0o700
FILE_MODE = 0o600
_READ_CHUNK = 1 << 18
# Where a record can start again inside damaged bytes: every request path begins so.
_RESYNC = b"/api/training/jobs"


@dataclass(frozen=True, slots=True)
class Entry:
    """One request waiting for delivery."""

    path: str
    body: bytes
    points: int
    # Set by whoever builds the entry (the flusher) or reads it back (``decode_line``).
    kind: Kind = Kind.POINTS


def journal_dir(directory: Path | None = None) -> Path:
    return directory if directory is not None else local.data_dir() / "journal"


def make_private_dir(path: Path) -> None:
    """``path`` and any missing parents, created 0700 (an existing folder is left as it is)."""
    if path.is_dir():
        return
    if not path.parent.is_dir():
        make_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, DIR_MODE)
    if not path.is_dir():  # a regular file in the way: say so as the OS would
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def open_private(path: Path, flags: int) -> int:
    """``os.open`` with the file created 0600."""
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)


def open_for_append(path: Path) -> int:
    """The journal's file, for reading and appending; replaced in tests to simulate ENOSPC."""
    return open_private(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)


def append_private(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created 0600)."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def encode_line(entry: Entry) -> bytes:
    return entry.path.encode() + b" " + entry.body + b"\n"


def decode_line(line: bytes, *, need_newline: bool = True) -> Entry | None:
    """``None`` for a torn or damaged line (a crash mid-write leaves at most one, at the end)."""
    if need_newline and not line.endswith(b"\n"):
        return None
    path, sep, body = line.rstrip(b"\n").partition(b" ")
    if not sep or not path.startswith(b"/") or b"\n" in body:
        return None
    try:
        decoded = json.loads(body)
        text_path = path.decode("ascii")
    except ValueError:  # includes invalid UTF-8 (UnicodeDecodeError)
        return None
    if not isinstance(decoded, dict):
        return None
    points = decoded.get("points")
    count = len(points) if isinstance(points, list) else 0
    # Lines carry no kind (older releases wrote them too): it follows from the parsed body.
    return Entry(text_path, body, count, kind_of(text_path, decoded, count))


@dataclass(frozen=True, slots=True)
class Scan:
    """What ``scan`` found in a journal's bytes: intact records and the damaged byte ranges."""

    records: list[tuple[Entry, int]]  # each record and the file offset just after it
    damaged: list[tuple[int, int]]  # [start, end) file offsets, merged where adjacent
    torn_tail: int  # bytes of an unfinished last line (a crash mid-write): expected


def scan(data: bytes, base: int = 0) -> Scan:
    """Split journal bytes (starting at file offset ``base``) into records and damage. Pure.

    A damaged line is searched for a request path, so a record glued behind garbage (bytes
    flipped or inserted without a newline) is still recovered: only the bad bytes are lost.
    """
    records: list[tuple[Entry, int]] = []
    damaged: list[tuple[int, int]] = []
    torn = 0
    start = 0
    while start < len(data):
        cut = data.find(b"\n", start)
        last = cut < 0
        end = len(data) if last else cut + 1
        line = data[start:end]
        entry = decode_line(line, need_newline=not last)
        if entry is not None:
            records.append((entry, base + end))
        elif last and _RESYNC not in line[1:]:
            torn = len(line)  # the write that a crash interrupted: nothing to report
        else:
            good = _resync(line, last)
            bad_end = start + (good if good is not None else len(line))
            _add_range(damaged, base + start, base + bad_end)
            if good is not None:
                entry = decode_line(line[good:], need_newline=not last)
                assert entry is not None
                records.append((entry, base + end))
        start = end
    return Scan(records, damaged, torn)


def _resync(line: bytes, last: bool) -> int | None:
    """The offset inside a damaged ``line`` where an intact record starts, if any."""
    at = line.find(_RESYNC, 1)
    while at >= 0:
        if decode_line(line[at:], need_newline=not last) is not None:
            return at
        at = line.find(_RESYNC, at + 1)
    return None


def _add_range(ranges: list[tuple[int, int]], start: int, end: int) -> None:
    if ranges and ranges[-1][1] == start:
        ranges[-1] = (ranges[-1][0], end)
    else:
        ranges.append((start, end))


class Journal:
    """The spill file of one running reporter: appended at the tail, consumed from the head.

    Every append is one unbuffered ``write``, so a full disk (``ENOSPC``) is reported by the
    append that hit it, never later by a flush, and the file is cut back to its last whole
    line: what ``append`` accepted is on disk, what it refused is not.
    """

    def __init__(self, path: Path, *, opener: Callable[[Path], int] | None = None) -> None:
        make_private_dir(path.parent)
        self.path = path
        self._fd = (opener or open_for_append)(path)
        try:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._size = os.fstat(self._fd).st_size
        except OSError:
            os.close(self._fd)
            raise
        self._read_pos = _read_pos(path)
        self._entries = 0  # unacknowledged entries in the file
        self._points = 0
        self._head: tuple[Entry, int] | None = None  # next entry and the offset after it

    @property
    def pending(self) -> int:
        return self._entries

    @property
    def pending_points(self) -> int:
        return self._points

    def append(self, entry: Entry) -> None:
        """Write one request; ``OSError`` (e.g. ``ENOSPC``) if the disk refused it."""
        line = encode_line(entry)
        try:
            _write_all(self._fd, line)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # no torn line left behind
            raise
        self._size += len(line)
        self._entries += 1
        self._points += entry.points

    def flush(self) -> None:
        """Nothing to do: appends are unbuffered (kept for callers that flush)."""

    def peek(self) -> Entry | None:
        while self._head is None and self._entries:
            line = _read_line(self._fd, self._read_pos)
            if not line:
                self._entries = 0
                return None
            entry = decode_line(line)
            if entry is None:  # cannot happen for lines we wrote whole; skip defensively
                self._read_pos += len(line)
                self._entries -= 1
                continue
            self._head = (entry, self._read_pos + len(line))
        return self._head[0] if self._head else None

    def pop(self) -> None:
        """The head was acknowledged (or given up on)."""
        if self._head is None:
            return
        entry, self._read_pos = self._head
        self._head = None
        self._entries -= 1
        self._points -= entry.points
        with contextlib.suppress(OSError):  # a lagging offset only means a deduplicated resend
            _write_pos(self.path, self._read_pos)

    def close(self, *, delete_if_empty: bool = True) -> None:
        if delete_if_empty and self._entries == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                _pos_path(self.path).unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)  # also drops the lock


def _read_line(fd: int, offset: int) -> bytes:
    parts: list[bytes] = []
    while True:
        chunk = os.pread(fd, _READ_CHUNK, offset)
        if not chunk:
            break
        cut = chunk.find(b"\n")
        if cut >= 0:
            parts.append(chunk[: cut + 1])
            break
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _pos_path(path: Path) -> Path:
    return path.with_name(path.name + ".pos")


def _read_pos(path: Path) -> int:
    try:
        return int(_pos_path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _write_pos(path: Path, offset: int) -> None:
    # Write-then-rename so a crash never leaves a half-written offset.
    tmp = _pos_path(path).with_suffix(".tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        _write_all(fd, str(offset).encode())
    finally:
        os.close(fd)
    os.replace(tmp, _pos_path(path))


@dataclass(frozen=True, slots=True)
class Skipped:
    """Damaged bytes of one journal that ``sync`` could not read; the file is quarantined."""

    journal: str  # the journal's file name
    ranges: tuple[tuple[int, int], ...]  # [start, end) byte offsets
    quarantined: str | None  # where the file went

    @property
    def bytes(self) -> int:
        return sum(end - start for start, end in self.ranges)


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What ``sync_pending`` did; ``pending_*`` is what is still on disk for a later try."""

    journals: int = 0
    journals_done: int = 0
    skipped_in_use: int = 0
    batches_sent: int = 0
    points_sent: int = 0
    rejected_batches: int = 0
    pending_batches: int = 0
    pending_points: int = 0
    error: str | None = None
    damaged: tuple[Skipped, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.pending_batches == 0 and not self.damaged


def leftover_journals(directory: Path | None = None) -> list[Path]:
    folder = journal_dir(directory)
    try:
        return sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX) and p.is_file())
    except OSError:
        return []


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[bytes] | None]:
    """The file opened and locked, or ``None`` when a live process owns it."""
    with open(path, "rb") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield None
                return
        yield handle


def sync_pending(
    url: str,
    token: str | None,
    directory: Path | None = None,
    *,
    transport: Transport | None = None,
) -> SyncSummary:
    """Upload every leftover journal under ``directory`` (default ``<data dir>/journal``).

    Stops at the first unreachable server or rejected token, keeping the rest for next time;
    a batch the server refuses with another 4xx is moved aside to ``<file>.rejected``. Damaged
    bytes are skipped (every intact record around them is sent), listed in the summary, and
    the journal is moved to ``quarantine/`` instead of being deleted.
    """
    own = HttpTransport(url, token, timeout=60) if transport is None else None
    try:
        return _sync(own or transport, directory)  # type: ignore[arg-type]
    finally:
        if own is not None:
            own.close()


def _sync(send: Transport, directory: Path | None) -> SyncSummary:
    totals = dict.fromkeys(
        ("journals", "journals_done", "skipped_in_use", "batches_sent", "points_sent",
         "rejected_batches", "pending_batches", "pending_points"), 0
    )  # fmt: skip
    error: str | None = None
    damaged: list[Skipped] = []
    for path in leftover_journals(directory):
        totals["journals"] += 1
        with _locked(path) as handle:
            if handle is None:
                totals["skipped_in_use"] += 1
                continue
            start = _read_pos(path)
            handle.seek(start)
            found = scan(handle.read(), start)
            offset = start
            for index, (entry, after) in enumerate(found.records):
                if error is None:
                    error = _send_one(send, entry, path, totals)
                if error is not None:
                    rest = found.records[index:]
                    totals["pending_batches"] += len(rest)
                    totals["pending_points"] += sum(e.points for e, _ in rest)
                    break
                offset = after
            if error is not None:
                # Resume before the first damage, so a later sync still sees (and reports) it;
                # records resent from there are applied once by the server.
                if found.damaged:
                    offset = min(offset, found.damaged[0][0])
                _write_pos(path, offset)
            elif found.damaged:
                moved = _quarantine(path)
                damaged.append(Skipped(path.name, tuple(found.damaged), moved))
                totals["journals_done"] += 1
            else:
                for done in (path, _pos_path(path)):
                    with contextlib.suppress(OSError):
                        done.unlink()
                totals["journals_done"] += 1
    return SyncSummary(**totals, error=error, damaged=tuple(damaged))


def _quarantine(path: Path) -> str | None:
    """Move a damaged journal (and its offset file) aside for a human; never delete it."""
    folder = path.parent / QUARANTINE
    try:
        make_private_dir(folder)
        target = folder / path.name
        os.replace(path, target)
    except OSError:
        return None  # left where it was: it is still there for a human, just not moved
    with contextlib.suppress(OSError):
        os.replace(_pos_path(path), folder / _pos_path(path).name)
    return str(target)


def _send_one(send: Transport, entry: Entry, path: Path, totals: dict[str, int]) -> str | None:
    """Deliver one entry; an error text means stop syncing."""
    try:
        answer = send("POST", entry.path, entry.body)
    except TransportError as exc:
        return f"cannot reach the server: {exc}"
    if answer.status in (401, 403):
        return f"the server refused the token ({answer.status}); set TRAINMON_TOKEN"
    if 200 <= answer.status < 300:
        totals["batches_sent"] += 1
        totals["points_sent"] += entry.points
    elif 400 <= answer.status < 500:
        append_private(path.with_name(path.name + ".rejected"), encode_line(entry))
        totals["rejected_batches"] += 1
    else:
        return f"the server answered {answer.status}; try again later"
    return None
