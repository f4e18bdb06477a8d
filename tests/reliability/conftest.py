"""Fixtures shared by the reliability tests: real training-script processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sdk_helpers import Child


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """Start training scripts; each one is killed and its pipes closed at teardown."""
    children: list[Child] = []

    def start(script: str, env: dict[str, str], *args: str) -> Child:
        children.append(Child(script, env, *args))
        return children[-1]

    yield start
    for child in children:
        child.close()
