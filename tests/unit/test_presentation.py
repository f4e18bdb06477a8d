"""The dashboard's pure formatting (trainmon.presentation), and the card partial it feeds.

format.js mirrors these functions; tests/e2e/test_parity.py checks the two agree.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainmon import presentation as p

T0 = p.parse_iso("2026-11-29T22:00:00Z") or 0.0


@pytest.mark.parametrize(
    ("started", "now", "finished", "shown"),
    [
        (None, T0, None, "--:--:--"),
        ("", T0, None, "--:--:--"),
        ("yesterday", T0, None, "--:--:--"),
        ("2026-02-30T00:00:00Z", T0, None, "--:--:--"),
        (12345, T0, None, "--:--:--"),
        ("2026-11-29T22:00:00Z", T0, None, "00:00:00"),
        ("2026-11-29T22:00:00Z", T0 + 59.999, None, "00:00:59"),
        ("2026-11-29T22:00:00Z", T0 + 3723, None, "01:02:03"),
        ("2026-11-29T22:00:00Z", T0 + 100 * 3600, None, "100:00:00"),
        ("2026-11-29T22:00:00Z", T0 - 30, None, "00:00:00"),  # clock skew: never negative
        ("2026-11-29T22:00:00Z", T0 + 9999, "2026-11-29T22:10:00.5Z", "00:10:00"),  # frozen
        ("2026-11-29T22:00:00Z", T0 + 9999, "garbage", "02:46:39"),  # bad end: keep ticking
        ("2026-11-29T23:00:00+01:00", T0 + 1, None, "00:00:01"),
    ],
)
def test_format_elapsed(started: object, now: float, finished: object, shown: str) -> None:
    assert p.format_elapsed(started, now, finished) == shown


@pytest.mark.parametrize(
    ("status", "stale", "variant", "icon", "text"),
    [
        ("pending", False, "secondary", "clock", "Pending"),
        ("queued", False, "secondary", "clock", "Queued"),
        ("running", False, "default", "zap", "Running"),
        ("completed", False, "default", "check-circle", "Completed"),
        ("failed", False, "destructive", "alert-circle", "Failed"),
        ("cancelled", False, "outline", "x-circle", "Cancelled"),
        ("running", True, "warning", "wifi-off", "Stale"),
        ("completed", True, "default", "check-circle", "Completed"),  # only running goes stale
        ("exploded", False, "outline", "help-circle", "Unknown"),
    ],
)
def test_badge_for(status: str, stale: bool, variant: str, icon: str, text: str) -> None:
    assert p.badge_for(status, stale) == p.Badge(variant, icon, text)


def test_badge_for_returns_the_same_object_each_time() -> None:
    assert p.badge_for("running") is p.badge_for("running")


@pytest.mark.parametrize(
    ("current", "total", "shown"),
    [
        (3700, 10000, "3,700 / 10,000"),
        (0, 10, "0 / 10"),
        (None, 10, "— / 10"),
        (1234567, None, "1,234,567"),
        (None, None, "—"),
        (True, 5, "— / 5"),
        (12.9, 100, "12 / 100"),
        (math.inf, 5, "— / 5"),
    ],
)
def test_format_steps(current: object, total: object, shown: str) -> None:
    assert p.format_steps(current, total) == shown


@pytest.mark.parametrize(
    ("value", "shown", "bad"),
    [
        (0.421349, "0.4213", False),
        (0.5, "0.5", False),
        (2.0, "2", False),
        (0.3125, "0.3125", False),
        (1.0625, "1.063", False),  # an exact tie rounds up, as JavaScript does
        (1234.5678, "1235", False),
        (123456.7, "123500", False),
        (1234567.0, "1.235e+06", False),
        (0.00012345, "0.0001234", False),  # binary value is just below the tie
        (0.000012345, "1.234e-05", False),
        (-0.5, "-0.5", False),
        (0, "0", False),
        ("NaN", "NaN", True),
        ("Infinity", "Infinity", True),
        ("-Infinity", "-Infinity", True),
        (math.nan, "NaN", True),
        (None, "—", False),
        ("0.5", "—", False),  # only the three special strings are numbers
    ],
)
def test_format_loss(value: object, shown: str, bad: bool) -> None:
    assert p.format_loss(value) == (shown, bad)


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != 0))
def test_format_sig_keeps_four_digits_and_round_trips_closely(x: float) -> None:
    shown = p.format_sig(x)
    mantissa = shown.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    assert 1 <= len(mantissa.rstrip("0")) <= 4
    back = float(shown)
    assert back == pytest.approx(x, rel=5e-4) or (abs(x) > 1e307)


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (None, "—"),
        (0.0, "—"),
        (math.inf, "—"),
        (2.25, "2.3 steps/s"),
        (12.0, "12.0 steps/s"),
        (150.5, "151 steps/s"),
        (1234.4, "1,234 steps/s"),
        (0.5, "2.0 s/step"),
        (0.125, "8.0 s/step"),
    ],
)
def test_format_rate(rate: float | None, shown: str) -> None:
    assert p.format_rate(rate) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (0.2, "1s"),
        (59, "59s"),
        (60, "1m 00s"),
        (245, "4m 05s"),
        (3600, "1h 00m"),
        (7620, "2h 07m"),
        (86400, "1d 0h"),
        (300000, "3d 11h"),
        (-4, "0s"),
    ],
)
def test_format_duration(seconds: float, shown: str) -> None:
    assert p.format_duration(seconds) == shown


def job(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "3f2a9c1e5b7d",
        "name": "llama-lora-r16",
        "status": "running",
        "progress": 37.0,
        "currentStep": 3700,
        "totalSteps": 10000,
        "currentLoss": 0.4213,
        "createdAt": "2026-11-29T22:00:00Z",
        "startedAt": "2026-11-29T22:00:00Z",
        "finishedAt": None,
        "updatedAt": "2026-11-29T22:01:40Z",
        "lastSeenAt": "2026-11-29T22:01:40Z",
        "stale": False,
        "cancelRequested": False,
        "error": None,
        "executor": "sdk",
        "metrics": {},
        "command": None,
    }
    return {**base, **fields}


def test_rate_and_eta_from_the_job_alone() -> None:
    j = job()
    assert p.steps_per_second(j) == pytest.approx(37.0)  # 3,700 steps in 100 s
    assert p.format_rate(p.steps_per_second(j)) == "37.0 steps/s"
    end = p.eta_at(j)
    assert end == pytest.approx(T0 + 100 + 6300 / 37)
    assert p.format_eta(end, T0 + 100) == "2m 51s"
    assert p.format_eta(end, T0 + 100 + 60) == "1m 51s"  # counts down between reports
    assert p.format_eta(end, T0 + 99999) == "0s"
    assert p.eta_at(job(totalSteps=None)) is None
    assert p.steps_per_second(job(lastSeenAt=None)) is None
    assert p.steps_per_second(job(currentStep=0)) is None


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (0, "just now"),
        (4.9, "just now"),
        (5, "5 s ago"),
        (59, "59 s ago"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (3600, "1 h ago"),
        (86400 * 3, "3 d ago"),
        (-10, "just now"),
    ],
)
def test_relative_time(ago: float, shown: str) -> None:
    assert p.relative_time(T0 - ago, T0) == shown


def test_relative_time_unknown() -> None:
    assert p.relative_time(None, T0) == "—"


@pytest.mark.parametrize(
    ("progress", "value", "label"),
    [
        (37.0, 37.0, "37%"),
        (99.7, 99.7, "99%"),
        (100, 100.0, "100%"),
        (150, 100.0, "100%"),
        (-1, 0.0, "0%"),
        (None, 0.0, "0%"),
        ("NaN", 0.0, "0%"),
    ],
)
def test_format_percent(progress: object, value: float, label: str) -> None:
    assert p.format_percent(progress) == (value, label)


def test_parse_iso() -> None:
    assert p.parse_iso("2026-11-29T22:00:00.123456Z") == pytest.approx(T0 + 0.123456)
    assert p.parse_iso("2026-11-29T23:30:00+01:30") == T0
    for bad in ("2026-11-29", "2026-13-01T00:00:00Z", "2026-11-29T22:00:00", None, 5, ""):
        assert p.parse_iso(bad) is None


def test_extra_metrics_and_command() -> None:
    assert p.format_extra({"lr": 0.0003, "acc": "NaN", "bad": "x"}) == "acc NaN · lr 0.0003"
    assert p.format_extra(None) == ""
    assert p.format_command({"argv": ["python", "train.py"]}) == "python train.py"
    assert p.format_command(None) == ""


def test_card_view_of_a_running_job() -> None:
    v = p.card_view(job(cancelRequested=True, metrics={"lr": 0.0003}), T0 + 100)
    assert (v.status, v.active, v.badge.text) == ("running", True, "Running")
    assert (v.steps, v.loss, v.loss_bad) == ("3,700 / 10,000", "0.4213", False)
    assert (v.progress_attr, v.progress_label) == ("37.00", "37%")
    assert v.elapsed == "00:01:40"
    assert v.finished_iso == ""  # keeps ticking
    assert v.show_rate and v.rate == "37.0 steps/s"
    assert v.cancelling is True
    assert v.created_relative == "1 min ago"
    assert v.created_title == "2026-11-29 22:00:00 UTC"
    assert v.extra == "lr 0.0003"
    assert v.error == "" and v.stale_note == "" and v.logs_url == ""


def test_card_view_of_finished_stale_and_failed_jobs() -> None:
    failed = p.card_view(
        job(
            status="failed",
            error="lost contact",
            finishedAt="2026-11-29T22:00:30Z",
            currentLoss="NaN",
            cancelRequested=True,
            executor="local",
        ),
        T0 + 999,
    )
    assert failed.error == "lost contact" and failed.elapsed == "00:00:30"
    assert failed.loss == "NaN" and failed.loss_bad
    assert not failed.active and not failed.cancelling and not failed.show_rate
    assert failed.logs_url == "/api/training/jobs/3f2a9c1e5b7d/logs/download"
    # A finished job without finishedAt freezes at its last update rather than ticking on.
    ended = p.card_view(job(status="cancelled", finishedAt=None), T0 + 999)
    assert ended.finished_iso == "2026-11-29T22:01:40Z" and ended.elapsed == "00:01:40"
    stale = p.card_view(job(stale=True), T0 + 145)
    assert stale.badge == p.STALE_BADGE
    assert stale.stale_note.startswith("No report for 45s;")
    # Error text shows only for failed jobs.
    assert p.card_view(job(error="leftover"), T0).error == ""


def test_blank_card_for_the_template() -> None:
    v = p.card_view({}, T0)
    assert (v.id, v.name, v.status, v.elapsed, v.steps) == ("", "", "", "--:--:--", "—")


# -- the card partial, rendered by the app's own template environment ----------------------


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("template", ["_job_card.html"])
def test_card_partial_escapes_every_user_string(template: str) -> None:
    from trainmon.server.app import make_templates

    hostile = "<img src=x onerror=alert(1)>\"'&"
    view = p.card_view(
        job(
            name=hostile,
            status="failed",
            error=hostile,
            metrics={hostile: 1.0},
            command={"argv": [hostile]},
            executor="local",
        ),
        T0,
    )
    env = make_templates().env
    html = env.get_template(template).render(c=view)
    parser = Collect()
    parser.feed(html)
    assert "img" not in parser.tags and "script" not in parser.tags
    assert "<img" not in html
    assert sum(hostile in t for t in parser.text) >= 3  # name, error, command, as text


@pytest.mark.parametrize("name", ["_job_card.html", "index.html", "login.html", "base.html"])
def test_autoescape_is_on_for_every_template(name: str) -> None:
    from trainmon.server.app import make_templates

    env = make_templates().env
    assert env.autoescape is True or (callable(env.autoescape) and env.autoescape(name))
