"""The tqdm parser on hand-written lines and on real output that tqdm itself writes here."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tqdm import tqdm  # type: ignore[import-untyped]

from trainmon.runner.tqdm_parse import (
    Bar,
    Progress,
    ProgressTracker,
    parse_bar,
    parse_line,
    parse_loss,
    parse_number,
    strip_ansi,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            " 37%|███▋      | 370/1000 [00:05<00:08, 72.3it/s, loss=0.421]",
            Bar("", 370, 1000, 0.421),
        ),
        ("\r 37%|###7      | 370/1000 [00:05<00:08, 72.3it/s]", Bar("", 370, 1000, None)),
        (
            "Epoch 1/3:  37%|███▋ | 370/1000 [00:05<00:08, 72.3it/s, v_num=0, train_loss=0.421]",
            Bar("Epoch 1/3", 370, 1000, 0.421),
        ),
        ("train: 370it [00:05, 72.3it/s, loss=1.5e-03]", Bar("train", 370, None, 0.0015)),
        ("1.50kit [00:00, 1.26kit/s]", Bar("", 1500, None, None)),
        ("dl:  15%|#5   | 1.50M/10.0M [00:00<00:00, 44.9MB/s]", Bar("dl", 1_500_000, 10_000_000)),
        (" 12%|#2  | 12/100 [1:02:03<7:30:00, 372.1s/it]", Bar("", 12, 100, None)),
        ("  0%|          | 0/3 [00:00<?, ?it/s, loss=nan]", Bar("", 0, 3, math.nan)),
        ("100%|██████████| 5/5 [00:01<00:00, 4.2it/s, loss=inf]", Bar("", 5, 5, math.inf)),
        ("eval: 100%|██| 0/0 [00:00<?, ?it/s]", Bar("eval", 0, None, None)),
        (" 50%|█████     | 1/2 [00:00<00:00,  2.00it/s, acc=0.9, loss=0.25]", Bar("", 1, 2, 0.25)),
        # Not bars: plain logs that happen to hold brackets, fractions or times.
        ("epoch 1/3 [done]", None),
        ("[2026-01-01 00:00:00] step 3/10", None),
        ('{"a": 1/2 [00:00, x]}', None),
        ("", None),
        ("loss=0.3", None),
    ],
)
def test_parse_line(line: str, expected: Bar | None) -> None:
    got = parse_line(line)
    if expected is None or got is None:
        assert got == expected
        return
    assert (got.desc, got.n, got.total) == (expected.desc, expected.n, expected.total)
    if expected.loss is not None and math.isnan(expected.loss):
        assert got.loss is not None and math.isnan(got.loss)
    else:
        assert got.loss == expected.loss


@pytest.mark.parametrize(
    ("text", "value"),
    [("370", 370.0), ("1.50k", 1500.0), ("10.0M", 1e7), ("2G", 2e9), ("x", None), ("", None)],
)
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("postfix", "loss"),
    [
        (", loss=0.5", 0.5),
        (", train_loss=0.7, loss=0.5", 0.5),  # plain "loss" wins over an alias
        (", val_loss=0.9", None),  # a validation loss is not the training loss
        (", train/loss=0.25", 0.25),
        (", loss=abc", None),
        ("", None),
    ],
)
def test_parse_loss(postfix: str, loss: float | None) -> None:
    assert parse_loss(postfix) == loss


def test_strip_ansi() -> None:
    assert strip_ansi("\x1b[32mgreen\x1b[0m\x1b[A") == "green"


# -- real tqdm output ---------------------------------------------------------------------


def tqdm_output(draw: Callable[[io.StringIO], None]) -> str:
    out = io.StringIO()
    draw(out)
    return out.getvalue()


def feed_all(text: str, chunk: int | None = None) -> tuple[list[Progress], ProgressTracker]:
    tracker = ProgressTracker()
    seen: list[Progress] = []
    pieces = [text] if chunk is None else [text[i : i + chunk] for i in range(0, len(text), chunk)]
    for piece in pieces:
        progress = tracker.feed(piece)
        if progress is not None:
            seen.append(progress)
    return seen, tracker


def loop_with_loss(out: io.StringIO) -> None:
    bar = tqdm(range(50), file=out, mininterval=0, miniters=1, desc="train")
    for i in bar:
        bar.set_postfix(loss=1.0 / (i + 1))


def unknown_total(out: io.StringIO) -> None:
    bar = tqdm(file=out, mininterval=0, miniters=1)
    for _ in range(7):
        bar.update(3)
    bar.close()


def unit_scale(out: io.StringIO) -> None:
    bar = tqdm(total=2_000_000, file=out, mininterval=0, miniters=1, unit_scale=True, unit="B")
    for _ in range(4):
        bar.update(500_000)
    bar.close()


def coloured(out: io.StringIO) -> None:
    for _ in tqdm(range(10), file=out, mininterval=0, miniters=1, colour="green", ascii=True):
        pass


def nested(out: io.StringIO) -> None:
    for _ in tqdm(range(3), file=out, mininterval=0, miniters=1, desc="epoch", position=0):
        for _ in tqdm(range(20), file=out, mininterval=0, miniters=1, desc="batch", position=1,
                      leave=False):  # fmt: skip
            pass


def test_real_bar_with_loss_postfix() -> None:
    seen, tracker = feed_all(tqdm_output(loop_with_loss))
    assert tracker.progress is not None
    assert tracker.progress.current_step == 50
    assert tracker.progress.total_steps == 50
    assert tracker.progress.loss == pytest.approx(1.0 / 50, rel=1e-2)
    steps = [p.current_step for p in seen if p.current_step is not None]
    assert steps == sorted(steps), "progress never goes back on one bar"


@pytest.mark.parametrize("chunk", [1, 7, 64, None])
def test_chunking_does_not_matter(chunk: int | None) -> None:
    """Pipes cut output anywhere; the end result is the same."""
    _, tracker = feed_all(tqdm_output(loop_with_loss), chunk)
    assert tracker.progress is not None
    assert (tracker.progress.current_step, tracker.progress.total_steps) == (50, 50)


def test_real_unknown_total() -> None:
    _, tracker = feed_all(tqdm_output(unknown_total))
    assert tracker.progress == Progress(21, None, None)


def test_real_unit_scale() -> None:
    _, tracker = feed_all(tqdm_output(unit_scale))
    assert tracker.progress == Progress(2_000_000, 2_000_000, None)


def test_real_ansi_colour() -> None:
    text = tqdm_output(coloured)
    assert "\x1b[" in text
    _, tracker = feed_all(text)
    assert tracker.progress == Progress(10, 10, None)


def test_real_nested_bars() -> None:
    seen, tracker = feed_all(tqdm_output(nested), chunk=16)
    totals = {p.total_steps for p in seen}
    assert totals <= {3, 20}
    # While a batch bar runs it is the progress (the larger running bar), and the epoch bar
    # is reported complete at the end.
    assert Progress(10, 20, None) in seen
    assert tracker.progress == Progress(3, 3, None)


def test_finished_preprocessing_bar_does_not_hide_training() -> None:
    tracker = ProgressTracker()
    tracker.feed("\rMap: 100%|██████████| 50000/50000 [00:01<00:00, 40000it/s]\n")
    got = tracker.feed("\rtrain:  10%|█         | 100/1000 [00:10<01:30, 10it/s, loss=2.5]")
    assert got == Progress(100, 1000, 2.5)


def test_hugging_face_loss_lines() -> None:
    tracker = ProgressTracker()
    tracker.feed(" 10%|█         | 100/1000 [00:10<01:30, 10it/s]\r")
    got = tracker.feed("{'loss': 0.4213, 'grad_norm': 1.2, 'learning_rate': 5e-05, 'epoch': 0.1}\n")
    assert got == Progress(100, 1000, 0.4213)


def test_unchanged_progress_is_not_repeated_even_when_nan() -> None:
    tracker = ProgressTracker()
    assert tracker.feed("\r 0%| | 1/9 [00:00<?, ?it/s, loss=nan]") is not None
    assert tracker.feed("\r 0%| | 1/9 [00:00<?, ?it/s, loss=nan]") is None


def test_giant_line_is_ignored() -> None:
    tracker = ProgressTracker()
    assert tracker.feed("[" + "x" * 200_000) is None
    assert tracker.feed("\r 5%| | 5/100 [00:00<00:01, 99it/s]\n") == Progress(5, 100, None)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parser_never_raises(text: str) -> None:
    parse_line(text)
    parse_bar(text)
    ProgressTracker().feed(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["\r", "\n", "\x1b[A", "\x1b[32m", "|", "█", " ", "37%", "370", "/",
                         "1000", "[", "]", "00:05", "<", ",", "it/s", "loss=", "nan", "k"]),
        max_size=60,
    )
)  # fmt: skip
def test_tracker_survives_bar_like_garbage(tokens: list[str]) -> None:
    tracker = ProgressTracker()
    for token in tokens:
        tracker.feed(token)


def test_escape_code_cut_between_chunks() -> None:
    tracker = ProgressTracker()
    tracker.feed("\rdl:  15%|\x1b[3")
    got = tracker.feed("2m#5   \x1b[0m| 15/100 [00:00<00:00, 44.9it/s]\r")
    assert got == Progress(15, 100, None)
