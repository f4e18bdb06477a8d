"""How a job reads on the dashboard: pure formatting, no I/O, no clock (callers pass ``now``).

``server/static/format.js`` is the same code in JavaScript for live updates, and the two must
agree character for character: ``tests/fixtures/formatting.json`` is one table of cases that
``tests/unit/test_formatting_fixture.py`` runs here and ``tests/e2e/test_formatting_fixture.py``
runs through format.js in a real browser. That is why rounding goes through ``Decimal`` with
``ROUND_HALF_UP`` on the exact binary value: it is what ECMAScript's ``toFixed`` and
``toExponential`` specify, where Python's own ``format`` rounds half to even and would disagree
on values such as a bf16 loss of 0.3125.

The input is a job as the API serialises it (camelCase dict), so both sides start from the
same data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal

NOT_STARTED = "--:--:--"
DASH = "—"
ACTIVE_STATUSES = frozenset({"pending", "queued", "running"})
MAX_EXTRA_METRICS = 4

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


@dataclass(frozen=True, slots=True)
class Badge:
    variant: str  # the seed's shadcn variant: default | secondary | destructive | outline
    icon: str  # id suffix of an inline SVG symbol in base.html
    text: str


# The seed's table; "stale" is ours: running, but the reporter has gone quiet.
BADGES: dict[str, Badge] = {
    "pending": Badge("secondary", "clock", "Pending"),
    "queued": Badge("secondary", "clock", "Queued"),
    "running": Badge("default", "zap", "Running"),
    "completed": Badge("default", "check-circle", "Completed"),
    "failed": Badge("destructive", "alert-circle", "Failed"),
    "cancelled": Badge("outline", "x-circle", "Cancelled"),
}
STALE_BADGE = Badge("warning", "wifi-off", "Stale")
UNKNOWN_BADGE = Badge("outline", "help-circle", "Unknown")


def badge_for(status: str, stale: bool = False) -> Badge:
    """Variant, icon and text for a status; never colour alone."""
    if stale and status == "running":
        return STALE_BADGE
    return BADGES.get(status, UNKNOWN_BADGE)


def parse_iso(value: object) -> float | None:
    """Unix seconds from the API's ISO 8601 strings; ``None`` for anything else.

    Hand-rolled rather than ``datetime.fromisoformat`` so it accepts exactly what format.js
    accepts, microseconds kept (``Date.parse`` would drop them).
    """
    if not isinstance(value, str):
        return None
    m = _ISO.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        whole = datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        return None
    frac = float("0." + m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    offset = 0
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return whole + frac - offset


def format_hms(seconds: float) -> str:
    total = max(0, math.floor(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def format_elapsed(started_at: object, now: float, finished_at: object = None) -> str:
    """``HH:MM:SS`` from start to finish (or ``now``); ``--:--:--`` if not started or garbled."""
    start = parse_iso(started_at)
    if start is None:
        return NOT_STARTED
    end = parse_iso(finished_at)
    if end is None:
        end = now
    if not math.isfinite(end - start):
        return NOT_STARTED
    return format_hms(end - start)


def format_int(value: int) -> str:
    return f"{value:,}"


def _as_double(value: int | float) -> float:
    """The number a browser holds after ``JSON.parse``: steps go up to 2**63 - 1, past what a
    double stores exactly, and first paint must show what live updates will show."""
    try:
        return float(value)
    except OverflowError:  # an integer literal beyond 1.8e308 parses to ±Infinity in JS
        return math.copysign(math.inf, value)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = _as_double(value)
    if not math.isfinite(number):
        return None
    return int(number)


def format_steps(current: object, total: object) -> str:
    """``3,700 / 10,000``; a missing side shows as a dash."""
    cur, tot = _as_int(current), _as_int(total)
    if cur is None and tot is None:
        return DASH
    if tot is None:
        return format_int(cur or 0)
    past = " (past total)" if cur is not None and tot > 0 and cur > tot else ""
    return f"{DASH if cur is None else format_int(cur)} / {format_int(tot)}{past}"


# A loop whose step has not moved for this many of its usual step times (and at least this
# long) is shown as stalled instead of with an ETA it will not keep.
STALL_FACTOR = 10
STALL_FLOOR_SECONDS = 30


def stall_note(job: Mapping[str, object], now: float) -> str:
    """``stalled 2m 05s`` for a running job whose step stopped moving; else empty."""
    start = parse_iso(job.get("startedAt"))
    moved = parse_iso(job.get("stepAt"))
    step = _as_int(job.get("currentStep"))
    if job.get("status") != "running" or start is None or moved is None or not step or step <= 0:
        return ""
    usual = max(0.0, moved - start) / step
    quiet = now - moved
    if quiet <= max(STALL_FACTOR * usual, STALL_FLOOR_SECONDS):
        return ""
    return f"stalled {format_duration(quiet)}"


def error_parts(error: object) -> tuple[str, bool]:
    """The line a card shows of an error, and whether more lies behind "Show more". A
    traceback ends with the line that names the exception, so that one is shown."""
    text = error if isinstance(error, str) else ""
    # Split and trim exactly as format.js does: \r\n, \r or \n; spaces and tabs.
    lines = [line.strip(" \t") for line in re.split(r"\r\n|\r|\n", text)]
    lines = [line for line in lines if line]
    if not lines:
        return "", False
    return lines[-1], len(lines) > 1


def number_value(value: object) -> float | None:
    """A JSON number, or the API's ``"NaN"``/``"Infinity"``/``"-Infinity"`` strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _as_double(value)
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(value)
    return None


def format_sig(value: float, digits: int = 4) -> str:
    """``digits`` significant digits, trailing zeros dropped; exponent form outside 1e-4..1e6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    rounded = Context(prec=digits, rounding=ROUND_HALF_UP).plus(Decimal(value))
    sign, digit_tuple, _ = rounded.as_tuple()
    mantissa = "".join(str(d) for d in digit_tuple).ljust(digits, "0")[:digits]
    exp = rounded.adjusted()
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        head, tail = mantissa[0], mantissa[1:].rstrip("0")
        dot = "." + tail if tail else ""
        return f"{neg}{head}{dot}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp >= 0:
        whole, frac = mantissa[: exp + 1].ljust(exp + 1, "0"), mantissa[exp + 1 :]
    else:
        whole, frac = "0", "0" * (-exp - 1) + mantissa
    frac = frac.rstrip("0")
    return f"{neg}{whole}{'.' + frac if frac else ''}"


def format_loss(value: object) -> tuple[str, bool]:
    """Loss text, and whether it is not finite (a diverged run, shown highlighted)."""
    number = number_value(value)
    if number is None:
        return DASH, False
    return format_sig(number), not math.isfinite(number)


def _fixed(value: float, places: int) -> str:
    """``Number.prototype.toFixed``: half up on the exact value."""
    quantum = Decimal(1).scaleb(-places)
    return f"{Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP):f}"


def steps_per_second(job: Mapping[str, object]) -> float | None:
    """Average rate since start, from the job alone (so first paint and live agree).

    The average over the run is steadier than a rate between two updates, which coalescing
    makes jumpy; it lags a change of speed, which an ETA can live with.
    """
    start = parse_iso(job.get("startedAt"))
    seen = parse_iso(job.get("lastSeenAt"))
    step = _as_int(job.get("currentStep"))
    if start is None or seen is None or step is None or step <= 0:
        return None
    span = seen - start
    if span <= 0:
        return None
    return step / span


def format_rate(rate: float | None) -> str:
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return DASH
    if rate >= 100:
        return f"{format_int(int(_fixed(rate, 0)))} steps/s"
    if rate >= 1:
        return f"{_fixed(rate, 1)} steps/s"
    return f"{_fixed(1 / rate, 1)} s/step"


def format_duration(seconds: float) -> str:
    """Short duration for an ETA: ``45s``, ``4m 05s``, ``2h 07m``, ``3d 4h``."""
    total = max(0, math.ceil(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h {total % 3600 // 60:02d}m"
    return f"{total // 86400}d {total % 86400 // 3600}h"


def eta_at(job: Mapping[str, object]) -> float | None:
    """When the job should end at its average rate, so a viewer can count down to it."""
    rate = steps_per_second(job)
    step, total = _as_int(job.get("currentStep")), _as_int(job.get("totalSteps"))
    seen = parse_iso(job.get("lastSeenAt"))
    if rate is None or step is None or total is None or seen is None or total <= 0:
        return None
    return seen + max(0, total - step) / rate


def format_eta(end: float | None, now: float) -> str:
    return DASH if end is None else format_duration(max(0.0, end - now))


def stale_note(last_seen: float | None, now: float) -> str:
    quiet = "yet" if last_seen is None else "for " + format_duration(now - last_seen)
    return f"No report {quiet}; the training may be stuck or its reporter gone."


def relative_time(then: float | None, now: float) -> str:
    """``just now``, ``42 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``."""
    if then is None:
        return DASH
    ago = math.floor(now - then)
    if ago < 5:
        return "just now"
    if ago < 60:
        return f"{ago} s ago"
    if ago < 3600:
        return f"{ago // 60} min ago"
    if ago < 86400:
        return f"{ago // 3600} h ago"
    return f"{ago // 86400} d ago"


def exact_time_utc(then: float | None) -> str:
    """Hover text for first paint; the browser swaps in the viewer's local time."""
    if then is None:
        return ""
    return datetime.fromtimestamp(then, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_percent(progress: object) -> tuple[float, str]:
    """Clamped value for the progress bar, and its label (floored: 99.7% is not done)."""
    number = number_value(progress)
    if number is None or not math.isfinite(number):
        number = 0.0
    value = max(0.0, min(100.0, number))
    return value, f"{math.floor(value)}%"


def format_extra(metrics: object) -> str:
    """A few other scalars the job logs (``lr 0.0003 · acc 0.912``), alphabetical."""
    if not isinstance(metrics, Mapping):
        return ""
    parts = []
    for key in sorted(str(k) for k in metrics)[:MAX_EXTRA_METRICS]:
        number = number_value(metrics[key])
        if number is not None:
            parts.append(f"{key} {format_sig(number)}")
    return " · ".join(parts)


def format_command(command: object) -> str:
    if not isinstance(command, Mapping):
        return ""
    argv = command.get("argv")
    if not isinstance(argv, list):
        return ""
    return " ".join(str(a) for a in argv)


@dataclass(frozen=True, slots=True)
class CardView:
    """Everything ``_job_card.html`` shows; format.js ``cardView`` builds the same fields."""

    id: str
    name: str
    status: str
    active: bool
    badge: Badge
    created_iso: str
    created_relative: str
    created_title: str
    progress_value: float
    progress_attr: str  # the bar's value attribute, spelled as format.js spells it
    progress_label: str
    elapsed: str
    started_iso: str
    finished_iso: str
    steps: str
    loss: str
    loss_bad: bool
    rate: str
    eta: str
    eta_at: str
    show_rate: bool
    error: str
    error_last: str  # the line shown; the whole error is behind "Show more" if error_more
    error_more: bool
    step_at_iso: str  # when the step last moved, and the step: the page's clock tells a stall
    step_count: str
    stale_note: str
    last_seen_iso: str
    extra: str
    command: str
    cancelling: bool
    logs_url: str
    updated_iso: str


def _int_text(value: int | None) -> str:
    return "" if value is None else str(value)


def card_view(job: Mapping[str, object], now: float) -> CardView:
    status = str(job.get("status") or "")
    stale = job.get("stale") is True
    active = status in ACTIVE_STATUSES
    running = status == "running"
    created = parse_iso(job.get("createdAt"))
    started_iso = job.get("startedAt")
    # A finished job without finishedAt freezes at its last update instead of ticking on.
    finished_iso = job.get("finishedAt") or (None if active else job.get("updatedAt"))
    loss_text, loss_bad = format_loss(job.get("currentLoss"))
    value, label = format_percent(job.get("progress"))
    error = job.get("error") if status == "failed" else None
    error_last, error_more = error_parts(error)
    stalled = stall_note(job, now)
    note = stale_note(parse_iso(job.get("lastSeenAt")), now) if stale and running else ""
    end = eta_at(job)
    job_id = str(job.get("id") or "")
    executor_local = job.get("executor") == "local"
    return CardView(
        id=job_id,
        name=str(job.get("name") or ""),
        status=status,
        active=active,
        badge=badge_for(status, stale),
        created_iso=str(job.get("createdAt") or ""),
        created_relative=relative_time(created, now),
        created_title=exact_time_utc(created),
        progress_value=value,
        progress_attr=_fixed(value, 2),
        progress_label=label,
        elapsed=format_elapsed(started_iso, now, finished_iso),
        started_iso=str(started_iso or ""),
        finished_iso=str(finished_iso or ""),
        steps=format_steps(job.get("currentStep"), job.get("totalSteps")),
        loss=loss_text,
        loss_bad=loss_bad,
        rate=format_rate(steps_per_second(job)),
        eta=stalled or format_eta(end, now),
        eta_at="" if end is None else _fixed(end, 3),
        show_rate=running,
        error=str(error) if error else "",
        error_last=error_last,
        error_more=error_more,
        step_at_iso=str(job.get("stepAt") or ""),
        step_count=_int_text(_as_int(job.get("currentStep"))),
        stale_note=note,
        last_seen_iso=str(job.get("lastSeenAt") or ""),
        extra=format_extra(job.get("metrics")),
        command=format_command(job.get("command")),
        cancelling=active and job.get("cancelRequested") is True,
        logs_url=f"/api/training/jobs/{job_id}/logs/download" if executor_local else "",
        updated_iso=str(job.get("updatedAt") or ""),
    )


@dataclass(frozen=True, slots=True)
class RowView:
    """What a row of a job list shows (_job_row.html); format.js ``rowView`` is its twin."""

    id: str
    name: str
    status: str
    active: bool
    badge: Badge
    progress_attr: str
    progress_label: str
    steps: str
    loss: str
    loss_bad: bool
    created_iso: str
    created_relative: str
    created_title: str
    started_iso: str
    started_relative: str
    started_title: str
    finished_iso: str
    finished_relative: str
    finished_title: str
    duration: str
    tags: str
    updated_iso: str
    error: str  # a failed job's error: its last line shows, the whole behind a click
    error_last: str
    error_more: bool


def format_run_time(started: float | None, finished: float | None, now: float) -> str:
    """How long a job ran (``4m 05s``), or has run so far (``4m 05s…``); a dash if it never
    started."""
    if started is None:
        return DASH
    if finished is not None:
        return format_duration(finished - started)
    return f"{format_duration(now - started)}…"


def row_view(job: Mapping[str, object], now: float) -> RowView:
    status = str(job.get("status") or "")
    active = status in ACTIVE_STATUSES
    value, label = format_percent(job.get("progress"))
    loss_text, loss_bad = format_loss(job.get("currentLoss"))
    times = {name: parse_iso(job.get(f"{name}At")) for name in ("created", "started", "finished")}
    tags = job.get("tags")
    error = str(job.get("error") or "") if status == "failed" else ""
    error_last, error_more = error_parts(error)
    return RowView(
        id=str(job.get("id") or ""),
        name=str(job.get("name") or ""),
        status=status,
        active=active,
        badge=badge_for(status, job.get("stale") is True),
        progress_attr=_fixed(value, 2),
        progress_label=label,
        steps=format_steps(job.get("currentStep"), job.get("totalSteps")),
        loss=loss_text,
        loss_bad=loss_bad,
        created_iso=str(job.get("createdAt") or ""),
        created_relative=relative_time(times["created"], now),
        created_title=exact_time_utc(times["created"]),
        started_iso=str(job.get("startedAt") or ""),
        started_relative=relative_time(times["started"], now),
        started_title=exact_time_utc(times["started"]),
        finished_iso=str(job.get("finishedAt") or ""),
        finished_relative=relative_time(times["finished"], now),
        finished_title=exact_time_utc(times["finished"]),
        duration=format_run_time(times["started"], None if active else times["finished"], now),
        tags=", ".join(str(t) for t in tags) if isinstance(tags, list) else "",
        updated_iso=str(job.get("updatedAt") or ""),
        error=error,
        error_last=error_last,
        error_more=error_more,
    )
