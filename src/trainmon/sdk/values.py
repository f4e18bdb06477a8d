"""Checking logged numbers at the call site and encoding points for the wire.

The hot path (``Run.log``) only calls into here when a value is not already a plain
``float``/``int``, so the checks below may be thorough.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

# One logged point as the hot path stores it: (step, unix time, loss, other scalars).
Point = tuple[int | None, float, float | None, dict[str, Any] | None]

_COMPACT = (",", ":")
_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def coerce_scalar(key: str, value: object) -> float:
    """``float(value)`` for anything ``float()`` takes; a ``TypeError`` naming ``key`` otherwise."""
    if isinstance(value, str | bytes | bytearray):
        # float("0.5") works, but a string in a metric is nearly always a bug at the call site.
        raise TypeError(f"trainmon: {key}={value!r} is text, not a number")
    try:
        return float(value)  # type: ignore[arg-type]  # numpy scalars, 0-d tensors, Decimal...
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"trainmon: {key}={value!r} ({type(value).__name__}) is not a number: {exc}"
        ) from None


def coerce_step(value: object) -> int:
    """An integer step from ints, numpy/tensor integers or integral floats."""
    if isinstance(value, bool):
        raise TypeError(f"trainmon: step={value!r} is a boolean, not a step number")
    index = getattr(value, "__index__", None)
    if index is not None:
        return int(index())
    number = coerce_scalar("step", value)
    if not number.is_integer():
        raise TypeError(f"trainmon: step={value!r} is not a whole number")
    return int(number)


def coerce_scalars(scalars: dict[str, Any]) -> dict[str, Any] | None:
    """Check every named scalar in place; ``None`` values are dropped (nothing to log)."""
    for key, value in list(scalars.items()):
        if type(value) is float:
            continue
        if value is None:
            del scalars[key]
        else:
            scalars[key] = coerce_scalar(key, value)
    return scalars or None


def _special(value: float) -> float | str:
    return value if math.isfinite(value) else _SPECIAL[repr(value)]


def dumps(body: dict[str, Any]) -> bytes:
    """Compact JSON with NaN and infinities as the API's strings, never as bare literals."""
    try:
        return json.dumps(body, separators=_COMPACT, allow_nan=False, default=str).encode()
    except ValueError:
        # Rare (a diverged loss): rebuild only then, so the common batch pays nothing.
        fixed = _replace_specials(body)
        return json.dumps(fixed, separators=_COMPACT, allow_nan=False, default=str).encode()


def _replace_specials(value: Any) -> Any:
    if type(value) is float:
        return _special(value)
    if isinstance(value, dict):
        return {k: _replace_specials(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_specials(v) for v in value]
    return value


_POINT = '{"step":%d,"time":%r,"loss":%r,"metrics":{}}'
_POINT_NO_LOSS = '{"step":%d,"time":%r,"loss":null,"metrics":{}}'


def encode_points(points: Iterable[Point]) -> str:
    """The JSON array of points, formatted directly: twice as fast as dicts + ``json.dumps``,
    which matters because this runs under the GIL the training loop needs. ``%r`` of a finite
    float is exactly JSON's float text; anything unusual takes the general route. Every step
    must already be numbered."""
    parts: list[str] = []
    add = parts.append
    for step, t, loss, metrics in points:
        if metrics is None and type(t) is float and t - t == 0.0:
            if loss is None:
                add(_POINT_NO_LOSS % (step, t))
                continue
            if type(loss) is float and loss - loss == 0.0:  # finite: inf-inf and nan-nan are nan
                add(_POINT % (step, t, loss))
                continue
        point = {"step": step, "time": t, "loss": loss, "metrics": metrics or {}}
        add(dumps(point).decode())
    return "[" + ",".join(parts) + "]"
