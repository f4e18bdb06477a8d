"""``import trainmon`` must stay light: standard library only, SDK internals included."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHECK = """
import json, sys
before = set(sys.modules)
import trainmon
{extra}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize(
    "extra",
    ["", "import trainmon.sdk.run, trainmon.sdk.track, trainmon.sdk.journal"],
    ids=["package", "sdk-internals"],
)
def test_import_uses_only_the_standard_library(extra: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(extra=extra)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(result.stdout)
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "trainmon"
    ]
    assert foreign == [], result.stderr
    heavy = {"trainmon.server", "trainmon.store", "trainmon.cli", "trainmon.service"}
    assert not heavy.intersection(loaded)
