"""How deep and how large a job's free-form JSON (config, tags) may be. The API refuses more at
the door; the store marks a stored value beyond what can be shown, so one bad row cannot
fail every list that includes it."""

from __future__ import annotations

import json
from typing import Any

MAX_CONFIG_DEPTH = 32
MAX_JSON_BYTES = 64 * 1024  # config and tags each, serialized
# Deeper than this a stored config is not shown (Pydantic refuses to serialise past ~250
# levels, and the answer's own nesting counts too); the API stores at most MAX_CONFIG_DEPTH.
MAX_RENDER_DEPTH = 128

_CONTAINERS = (dict, list, tuple)
_Container = dict[Any, Any] | list[Any] | tuple[Any, ...]


def json_depth(value: object) -> int:
    """Nesting depth of decoded JSON: a scalar is 0, ``{}`` and ``[]`` are 1. Level by level,
    not recursive, so a row nested deeper than Python's stack is measured, not a crash."""
    depth = 0
    level: list[_Container] = [value] if isinstance(value, _CONTAINERS) else []
    while level:
        depth += 1
        below: list[_Container] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below += [c for c in children if isinstance(c, _CONTAINERS)]
        level = below
    return depth


def json_problem(value: object, *, max_depth: int, max_bytes: int | None = None) -> str | None:
    """Why ``value`` cannot be stored or shown as plain JSON, or ``None`` if it can."""
    depth = json_depth(value)
    if depth > max_depth:
        return f"nested {depth} levels deep; at most {max_depth} are allowed"
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except ValueError:  # UnicodeEncodeError is one too
        return "must be plain JSON: no NaN, Infinity or lone surrogates"
    except TypeError as exc:
        return f"must be plain JSON: {exc}"
    if max_bytes is not None and len(encoded) > max_bytes:
        return f"is larger than {max_bytes // 1024} KiB serialized"
    return None
