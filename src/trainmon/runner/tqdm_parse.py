"""Progress parsed from tqdm-style output: ``37%|███▋ | 370/1000 [00:05<00:08, 72.3it/s,
loss=0.421]``. Pure: no I/O, no clock. Nothing here raises on strange input.

A tqdm bar redraws itself with ``\\r`` (and moves between nested bars with ANSI cursor codes),
so the output is cut into segments at ``\\r`` and ``\\n`` after the escape codes are removed;
each segment is at most one bar.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# CSI sequences (colours, cursor moves) and the two-byte escapes tqdm and friends emit.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_SEGMENT_SPLIT = re.compile(r"[\r\n]")

_NUM = r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[kMGTPEZY]?"
_TIME = r"(?:\d+:)?\d+:\d\d|\?"
# After the counter: ``[elapsed<remaining, rate, postfix]`` or ``[elapsed, rate, postfix]``,
# the rate being ``72.3it/s``, ``1.2s/it`` or ``?it/s``.
_BRACKET = rf"\[\s*(?:{_TIME})(?:<[^,\]]*)?,\s*[^,\]/]*/[^,\]]*(?P<postfix>.*)\]"
_KNOWN = re.compile(rf"(?<![\w.])(?P<n>{_NUM})/(?P<total>{_NUM})\s*{_BRACKET}")
_UNKNOWN = re.compile(rf"(?<![\w.])(?P<n>{_NUM})(?P<unit>[^\s\d\[\]]*)\s+{_BRACKET}")
_PERCENT = re.compile(r"\s*\d+%\|")
_POSTFIX_ITEM = re.compile(r"(?:^|,)\s*(?P<key>[\w./-]+)\s*=\s*(?P<value>[^,]*)")
# Hugging Face Trainer logs ``{'loss': 0.4213, 'grad_norm': ..., 'epoch': 0.37}`` lines.
_HF_LOSS = re.compile(r"""\{\s*['"]loss['"]\s*:\s*(?P<value>[-+\w.]+)""")

_SCALE = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}
LOSS_KEYS = ("loss", "train_loss", "train/loss", "training_loss", "loss_step")
MAX_PENDING = 64 * 1024  # a "line" longer than this without \r or \n is not a bar
MAX_BAR = 4096  # bars are a terminal line wide; longer segments are not looked at


@dataclass(frozen=True, slots=True)
class Bar:
    """One drawing of one tqdm bar."""

    desc: str
    n: int
    total: int | None
    loss: float | None = None

    @property
    def finished(self) -> bool:
        return self.total is not None and self.n >= self.total


@dataclass(frozen=True, slots=True)
class Progress:
    current_step: int | None
    total_steps: int | None
    loss: float | None


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def parse_number(text: str) -> float | None:
    """``370`` → 370.0, ``1.50k`` → 1500.0, ``10.0M`` → 1e7; ``None`` if it is not a number."""
    text = text.strip()
    if not text:
        return None
    scale = _SCALE.get(text[-1], 1.0)
    if scale != 1.0:
        text = text[:-1]
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_float(text: str) -> float | None:
    """A loss value as tqdm prints it: ``0.421``, ``4.21e-01``, ``nan``, ``inf``."""
    text = text.strip().strip("'\"")
    try:
        return float(text)
    except ValueError:
        return None


def _count(text: str) -> int | None:
    value = parse_number(text)
    if value is None or value < 0 or value > 2**62:
        return None
    return round(value)


def parse_loss(postfix: str) -> float | None:
    """The loss from a bar's postfix (``, loss=0.421, acc=0.9``); ``loss`` wins over aliases."""
    found: dict[str, str] = {}
    for match in _POSTFIX_ITEM.finditer(postfix):
        found.setdefault(match.group("key").lower(), match.group("value"))
    for key in LOSS_KEYS:
        if key in found:
            return parse_float(found[key])
    return None


def _desc(prefix: str) -> str:
    """The bar's description: what precedes ``37%|███▋ |`` (or the counter)."""
    percent = _PERCENT.search(prefix)
    if percent is not None:
        prefix = prefix[: percent.start()]
    return prefix.strip().rstrip(":").strip()


def parse_bar(segment: str) -> Bar | None:
    """One bar from one segment of output (ANSI codes already removed), or ``None``."""
    if len(segment) > MAX_BAR or "[" not in segment:
        return None
    match = _KNOWN.search(segment)
    if match is not None:
        n, total = _count(match.group("n")), _count(match.group("total"))
        if n is None or total is None:
            return None
        loss = parse_loss(match.group("postfix"))
        return Bar(_desc(segment[: match.start()]), n, total if total > 0 else None, loss)
    match = _UNKNOWN.search(segment)
    if match is not None:
        n = _count(match.group("n"))
        if n is None:
            return None
        loss = parse_loss(match.group("postfix"))
        return Bar(_desc(segment[: match.start()]), n, None, loss)
    return None


def parse_line(line: str) -> Bar | None:
    """The last bar drawn on a line of output that may hold ``\\r`` updates and ANSI codes."""
    bar = None
    for segment in _SEGMENT_SPLIT.split(strip_ansi(line)):
        found = parse_bar(segment)
        if found is not None:
            bar = found
    return bar


def parse_hf_loss(segment: str) -> float | None:
    match = _HF_LOSS.search(segment)
    return parse_float(match.group("value")) if match else None


class ProgressTracker:
    """Feeds on output chunks as they arrive and keeps the job's progress.

    Several bars may be alive (nested epoch/batch bars, an evaluation bar, a download bar): the
    job's progress is the unfinished bar with the largest total, else the bar drawn last, so a
    finished preprocessing bar does not hide the training bar and nested bars do not flicker.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._bars: dict[tuple[str, int | None], tuple[int, Bar]] = {}
        self._tick = 0
        self._loss: float | None = None
        self._last: Progress | None = None

    def feed(self, chunk: str) -> Progress | None:
        """Take more output; the new progress if it changed, else ``None``."""
        try:
            return self._feed(chunk)
        except Exception:  # a parser bug must never take the supervisor down
            self._pending = ""
            return None

    def _feed(self, chunk: str) -> Progress | None:
        # Escape codes are removed after joining: a chunk may end inside one.
        segments = _SEGMENT_SPLIT.split(self._pending + chunk)
        # The last segment may be cut mid-write; parse it anyway (a bar drawn with "\r" only
        # ends at the next redraw) but keep it until its end arrives.
        self._pending = segments[-1] if len(segments[-1]) <= MAX_PENDING else ""
        for segment in segments:
            self._take(strip_ansi(segment))
        return self._current()

    def _take(self, segment: str) -> None:
        if not segment.strip():
            return
        bar = parse_bar(segment)
        if bar is not None:
            self._tick += 1
            self._bars[(bar.desc, bar.total)] = (self._tick, bar)
            if bar.loss is not None:
                self._loss = bar.loss
            return
        hf_loss = parse_hf_loss(segment)
        if hf_loss is not None:
            self._loss = hf_loss

    def _current(self) -> Progress | None:
        if not self._bars and self._loss is None:
            return None
        step: int | None = None
        total: int | None = None
        if self._bars:
            bar = self.primary()
            if bar is not None:
                step, total = bar.n, bar.total
        progress = Progress(step, total, self._loss)
        if progress == self._last or _same_nan(progress, self._last):
            return None
        self._last = progress
        return progress

    def primary(self) -> Bar | None:
        drawn = list(self._bars.values())
        if not drawn:
            return None
        running = [(t, b) for t, b in drawn if b.total is not None and not b.finished]
        if running:
            return max(running, key=lambda tb: (tb[1].total or 0, tb[0]))[1]
        return max(drawn, key=lambda tb: tb[0])[1]

    @property
    def progress(self) -> Progress | None:
        return self._last


def _same_nan(a: Progress, b: Progress | None) -> bool:
    """NaN != NaN, yet a diverged loss that stays NaN is no change."""
    if b is None or a.loss is None or b.loss is None:
        return False
    return (
        math.isnan(a.loss)
        and math.isnan(b.loss)
        and (a.current_step, a.total_steps) == (b.current_step, b.total_steps)
    )
