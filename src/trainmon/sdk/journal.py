"""Append-only on-disk queue of requests the server has not acknowledged yet.

One file per (job, reporter) under ``<data dir>/journal/``: each line is ``<path> <json body>``,
exactly the request to send, so a batch keeps its sequence number and a resend is applied once.
``<file>.pos`` holds the byte offset of the first unacknowledged line; it may lag behind (a
crash between a send and its update) because the server deduplicates what is sent again.
The owning process holds an exclusive ``flock`` so ``trainmon sync`` leaves a live run alone.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trainmon import local
from trainmon.sdk.transport import HttpTransport, Transport, TransportError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; sync may then race a live run (harmless)
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class Entry:
    """One request waiting for delivery."""

    path: str
    body: bytes
    points: int


def journal_dir(directory: Path | None = None) -> Path:
    return directory if directory is not None else local.data_dir() / "journal"


def encode_line(entry: Entry) -> bytes:
    return entry.path.encode() + b" " + entry.body + b"\n"


def decode_line(line: bytes) -> Entry | None:
    """``None`` for a torn or foreign line (a crash mid-write leaves at most one)."""
    path, sep, body = line.rstrip(b"\n").partition(b" ")
    if not sep or not path.startswith(b"/") or not line.endswith(b"\n"):
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    points = decoded.get("points") if isinstance(decoded, dict) else None
    return Entry(path.decode(), body, len(points) if isinstance(points, list) else 0)


class Journal:
    """The spill file of one running reporter: appended at the tail, consumed from the head."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 - lives as long as the run
        if fcntl is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        self._file.seek(0, os.SEEK_END)
        self._file.write(encode_line(entry))
        self._entries += 1
        self._points += entry.points

    def flush(self) -> None:
        self._file.flush()

    def peek(self) -> Entry | None:
        while self._head is None and self._entries:
            self._file.flush()
            self._file.seek(self._read_pos)
            line = self._file.readline()
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
        _write_pos(self.path, self._read_pos)

    def close(self, *, delete_if_empty: bool = True) -> None:
        self._file.flush()
        if delete_if_empty and self._entries == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                _pos_path(self.path).unlink()
        self._file.close()  # also drops the lock


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
    tmp.write_text(str(offset))
    os.replace(tmp, _pos_path(path))


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

    @property
    def ok(self) -> bool:
        return self.error is None and self.pending_batches == 0


def leftover_journals(directory: Path | None = None) -> list[Path]:
    folder = journal_dir(directory)
    try:
        return sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX))
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
    a batch the server refuses with another 4xx is moved aside to ``<file>.rejected``.
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
    for path in leftover_journals(directory):
        totals["journals"] += 1
        with _locked(path) as handle:
            if handle is None:
                totals["skipped_in_use"] += 1
                continue
            offset = _read_pos(path)
            handle.seek(offset)
            lines = handle.readlines()
            for index, line in enumerate(lines):
                entry = decode_line(line)
                if entry is None:
                    offset += len(line)
                    continue
                if error is None:
                    error = _send_one(send, entry, path, totals)
                if error is not None:
                    rest = [decode_line(x) for x in lines[index:]]
                    totals["pending_batches"] += sum(1 for e in rest if e is not None)
                    totals["pending_points"] += sum(e.points for e in rest if e is not None)
                    break
                offset += len(line)
            if error is None:
                for done in (path, _pos_path(path)):
                    with contextlib.suppress(OSError):
                        done.unlink()
                totals["journals_done"] += 1
            else:
                _write_pos(path, offset)
    return SyncSummary(**totals, error=error)


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
        with open(path.with_name(path.name + ".rejected"), "ab") as aside:
            aside.write(encode_line(entry))
        totals["rejected_batches"] += 1
    else:
        return f"the server answered {answer.status}; try again later"
    return None
