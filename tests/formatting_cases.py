"""The shared table of formatting cases (tests/fixtures/formatting.json), for the two tests
that run it: through presentation.py (tests/unit) and through format.js in a browser
(tests/e2e). Both sides are checked by the same ``check`` against the same expectations.

JSON has no NaN or Infinity, so the table spells them ``{"$": "NaN"}``, ``{"$": "Infinity"}``,
``{"$": "-Infinity"}``; ``decode`` and format.js's side of the e2e test both read that, and
results are encoded the same way before they are compared.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "formatting.json"
SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    js: str  # format.js export
    python: str  # trainmon.presentation function
    args: list[Any]  # as in the file: still encoded
    expect: Any
    fields: bool  # expect names only some fields of an object result

    @property
    def id(self) -> str:
        return f"{self.js}{json.dumps(self.args)[:60]}"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def load() -> Iterator[Case]:
    table = json.loads(FIXTURE.read_text(encoding="utf-8"))
    names: dict[str, str] = table["python_names"]
    for js, group in table["functions"].items():
        for case in group["cases"]:
            yield Case(
                js,
                names.get(js, snake(js)),
                case["args"],
                case["expect"],
                group.get("fields", False),
            )


def params() -> list[Any]:
    return [pytest.param(c, id=c.id) for c in load()]


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$"}:
            return SPECIAL[value["$"]]
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode(value: Any) -> Any:
    """A Python result in the JSON shape format.js returns: tuples as arrays, dataclasses as
    camelCase objects, non-finite floats tagged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {camel(f.name): encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    return value


def check(case: Case, got: Any) -> None:
    """``got`` is an encoded result; numbers compare to a microsecond, text exactly."""
    if case.fields:
        got = {k: got[k] for k in case.expect}
    _same(got, case.expect, case.id)


def _same(got: Any, want: Any, where: str) -> None:
    if isinstance(want, float) and not isinstance(got, bool) and isinstance(got, int | float):
        assert got == pytest.approx(want, rel=1e-15, abs=1e-6), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, list) and isinstance(got, list) and len(got) == len(want):
        for g, w in zip(got, want, strict=True):
            _same(g, w, where)
    elif isinstance(want, dict) and isinstance(got, dict) and set(got) == set(want):
        for key in want:
            _same(got[key], want[key], f"{where}.{key}")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
