"""``trainmon run``'s arguments through click's runner: ours before the program, the program's
after it, an unknown one before it a usage error. The API client is a recorder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from trainmon.cli import main
from trainmon.cli import run as run_module


class Recorder:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert (method, path) == ("POST", "/api/training/jobs")
        self.posted.append(kwargs["json"])
        return {"id": "job-1"}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    @contextlib.contextmanager
    def api(url: str | None) -> Iterator[Recorder]:
        yield recorder

    monkeypatch.setattr(run_module, "api", api)
    return recorder


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args])


def test_an_unknown_option_before_the_program_is_a_usage_error(recorder: Recorder) -> None:
    result = invoke("--gpus", "1", "--", "python", "train.py")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    # click words it "No such option: --gpus" or "No such option '--gpus'." by version.
    assert len(errors) == 1 and "No such option" in errors[0] and "--gpus" in errors[0]
    assert recorder.posted == []


def test_an_unknown_short_option_is_a_usage_error(recorder: Recorder) -> None:
    result = invoke("-x", "python", "train.py")
    assert result.exit_code == 2 and "No such option" in result.output and "-x" in result.output
    assert recorder.posted == []


@pytest.mark.parametrize(
    ("args", "program_args"),
    [
        (["--", "python", "--version"], ["--version"]),
        (["python", "train.py", "--lr", "3"], ["train.py", "--lr", "3"]),
        (["--name", "mlp", "--", "python", "train.py", "-f"], ["train.py", "-f"]),
        # Options after the program are the program's, even ones named like ours.
        (
            ["python", "train.py", "--name", "x", "--gpus", "1"],
            ["train.py", "--name", "x", "--gpus", "1"],
        ),
    ],
)
def test_the_programs_options_belong_to_the_program(
    recorder: Recorder, args: list[str], program_args: list[str]
) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.output == "job-1\n"
    [body] = recorder.posted
    argv = body["command"]["argv"]
    assert argv[0].endswith("python") and argv[1:] == program_args


def test_our_options_before_the_program_are_ours(recorder: Recorder) -> None:
    result = invoke("--name", "mlp", "--tag", "a", "--env", "K=V", "python", "train.py")
    assert result.exit_code == 0, result.output
    [body] = recorder.posted
    assert body["name"] == "mlp" and body["tags"] == ["a"]
    assert body["command"]["env"] == {"K": "V"}
