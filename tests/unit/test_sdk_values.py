"""Numbers at the call site and on the wire."""

from __future__ import annotations

import decimal
import fractions
import json
import math
import warnings
from typing import Any

import numpy as np
import pytest

from trainmon.sdk.values import coerce_scalar, coerce_scalars, coerce_step, dumps, encode_points


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        (3, 3.0),
        (True, 1.0),
        (np.float32(0.25), 0.25),
        (np.float64(1.5), 1.5),
        (np.int64(7), 7.0),
        (np.array(2.5), 2.5),  # a 0-d array behaves like a 0-d tensor
        (decimal.Decimal("0.125"), 0.125),
        (fractions.Fraction(1, 4), 0.25),
    ],
)
def test_accepts_what_float_accepts(value: object, expected: float) -> None:
    assert coerce_scalar("lr", value) == expected


@pytest.mark.parametrize("value", [float("nan"), np.float64("nan")])
def test_nan_is_data(value: object) -> None:
    assert math.isnan(coerce_scalar("loss", value))


@pytest.mark.parametrize(
    "value", ["0.5", "abc", b"1", [1.0], {"a": 1}, object(), 1 + 2j, np.array([1.0, 2.0])]
)
def test_rejects_anything_else_naming_the_key(value: object) -> None:
    with pytest.raises(TypeError, match="val_acc"):
        coerce_scalar("val_acc", value)


@pytest.mark.parametrize(
    ("value", "expected"), [(3, 3), (np.int32(4), 4), (5.0, 5), (np.array(6), 6)]
)
def test_steps(value: object, expected: int) -> None:
    assert coerce_step(value) == expected


@pytest.mark.parametrize("value", [1.5, "3", True, None, [1]])
def test_bad_steps(value: object) -> None:
    with pytest.raises(TypeError, match="step"):
        coerce_step(value)


def test_scalars_drop_none_and_convert() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert coerce_scalars({"a": np.float32(1.0), "b": None, "c": 2}) == {"a": 1.0, "c": 2.0}
    assert coerce_scalars({"b": None}) is None


def test_dumps_sends_special_floats_as_strings() -> None:
    body: dict[str, Any] = {
        "points": [
            {"step": 1, "loss": math.nan, "metrics": {"g": math.inf, "h": -math.inf, "i": 1.0}}
        ]
    }
    text = dumps(body).decode()
    assert json.loads(text) == {
        "points": [
            {"step": 1, "loss": "NaN", "metrics": {"g": "Infinity", "h": "-Infinity", "i": 1.0}}
        ]
    }

    def no_bare_constants(name: str) -> object:
        raise AssertionError(f"bare {name} literal on the wire")

    json.loads(text, parse_constant=no_bare_constants)


@pytest.mark.parametrize(
    "point",
    [
        (1, 1764456484.123456, 0.421, None),
        (2, 1.5, None, None),
        (3, 2.0, math.nan, None),
        (4, 2.0, -math.inf, {"lr": 3e-4, "g": math.inf}),
        (5, 2.0, 7, None),
        (2**70, 2.0, 1e-300, {'é "q"': 1.0}),
    ],
)
def test_encode_points_matches_the_general_encoder(point: Any) -> None:
    step, t, loss, metrics = point
    expected = json.loads(
        dumps({"p": [{"step": step, "time": t, "loss": loss, "metrics": metrics or {}}]})
    )["p"]
    assert json.loads(encode_points([point])) == expected
