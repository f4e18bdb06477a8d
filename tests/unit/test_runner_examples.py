"""The examples run with numpy alone, end the way their names say, and print bars that the
supervisor's parser reads; the demo's mix points at real scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner_helpers import EXAMPLES, PY
from trainmon.cli.demo import DEMO_JOBS, demo_body, examples_dir
from trainmon.runner.tqdm_parse import ProgressTracker

# Runs an example with tqdm unimportable, as on a machine that has numpy only.
NO_TQDM = "import runpy, sys; sys.modules['tqdm'] = None; sys.argv = sys.argv[1:]; " \
    "runpy.run_path(sys.argv[0], run_name='__main__')"  # fmt: skip


def run_example(
    script: str, *args: str, block_tqdm: bool = False
) -> subprocess.CompletedProcess[str]:
    prefix = [PY, "-c", NO_TQDM] if block_tqdm else [PY]
    return subprocess.run(
        [*prefix, str(EXAMPLES / script), *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=EXAMPLES,
    )  # fmt: skip


@pytest.mark.parametrize("block_tqdm", [False, True])
def test_tqdm_example_prints_a_parsable_bar(block_tqdm: bool) -> None:
    done = run_example("tqdm_mlp.py", "--epochs", "2", "--delay", "0", block_tqdm=block_tqdm)
    assert done.returncode == 0, done.stderr
    tracker = ProgressTracker()
    tracker.feed(done.stderr)
    assert tracker.progress is not None, done.stderr
    assert (tracker.progress.current_step, tracker.progress.total_steps) == (32, 32)
    assert tracker.progress.loss is not None


def test_failing_example_fails_part_way() -> None:
    done = run_example("fails_partway.py", "--delay", "0", block_tqdm=True)
    assert done.returncode == 1
    assert done.stderr.rstrip().splitlines()[-1].startswith("ValueError: batch at step 120")


def test_diverging_example_reaches_nan() -> None:
    done = run_example("diverges_nan.py", "--delay", "0")
    assert done.returncode == 1
    assert "loss=nan" in done.stderr
    assert "FloatingPointError: loss is NaN" in done.stderr


def test_demo_mix_points_at_real_scripts(tmp_path: Path) -> None:
    found = examples_dir()
    assert found == EXAMPLES
    for job in DEMO_JOBS:
        body = demo_body(job, found, tmp_path, python="python3")
        argv = body["command"]["argv"]
        assert Path(argv[1]).is_file()
        assert body["command"]["cwd"] == str(tmp_path)
        assert body["tags"] == ["demo"]
