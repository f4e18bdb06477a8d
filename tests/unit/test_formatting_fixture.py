"""The shared formatting table (tests/fixtures/formatting.json) through presentation.py, the
first paint. tests/e2e/test_formatting_fixture.py runs the same table through format.js."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from formatting_cases import Case, check, decode, encode, load, params
from trainmon import presentation as p


@pytest.mark.parametrize("case", params())
def test_presentation_gives_the_fixture_text(case: Case) -> None:
    check(case, encode(getattr(p, case.python)(*decode(case.args))))


def test_the_fixture_covers_every_formatter_of_format_js() -> None:
    # A formatter added to both sides without cases here would drift unseen.
    source = (Path(p.__file__).parent / "server" / "static" / "format.js").read_text()
    exported = set(re.findall(r"^export function (\w+)", source, re.MULTILINE))
    assert exported == {c.js for c in load()}
