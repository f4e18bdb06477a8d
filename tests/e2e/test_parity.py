"""First paint (Python, Jinja) and live updates (JavaScript) must draw the same card and row.

presentation.py and format.js run on the same inputs here, and a card (or row) the server
rendered is compared, node by node, with the one card.js (or row.js) builds from the same JSON.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from e2e_harness import Server
from playwright.sync_api import Page

from trainmon import presentation as p

pytestmark = pytest.mark.e2e

NOW = 1_764_456_484.25
# Modules are found next to the page's own live.js, however the server versions static URLs.
ASSET = (
    "const asset = (name) => new URL(name, document.querySelector('script[type=module]').src).href;"
)
SIG_CASES: list[float] = [
    0.421349,
    0.3125,
    1.0625,
    2.34375,
    1000.5,
    0.00012345,
    0.000012345,
    123456.7,
    999999.5,
    1234567.0,
    1e-7,
    -0.5,
    -2.5e-9,
    0.5,
    1.0,
    10.0,
    99.995,
    9.9995,
    3.0e21,
    5e-324,
    0.1 + 0.2,
    1.7976931348623157e308,
    12345.678,
    0.00099995,
]
RATE_CASES: list[float | None] = [None, 0.0, 2.25, 0.8, 150.5, 99.95, 0.125, 1234.5, 1e9, 1.05]
DURATIONS = [0, 0.2, 59, 59.5, 60, 61, 3599, 3600, 86399, 86400, 200000, -5]
ISO_CASES = [
    "2026-11-29T22:48:04.123456Z",
    "2026-11-29T22:48:04Z",
    "2026-11-29T22:48:04.5+02:00",
    "2026-02-30T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "not a date",
    "2026-11-29 22:48:04Z",
    "2026-11-29T24:00:00Z",
    "",
    None,
    12,
]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def as_js(view: p.CardView) -> dict[str, Any]:
    return {camel(k): v for k, v in dataclasses.asdict(view).items()}


def run_js(page: Page, expression: str, arg: Any) -> Any:
    body = f"const f = await import(asset('format.js')); return {expression};"
    return page.evaluate(f"async (arg) => {{ {ASSET} {body} }}", arg)


def test_formatting_is_identical_in_python_and_javascript(page: Page, server: Server) -> None:
    page.goto(server.url)
    assert run_js(page, "arg.map((x) => f.formatSig(x))", SIG_CASES) == [
        p.format_sig(x) for x in SIG_CASES
    ]
    specials = run_js(page, "[NaN, Infinity, -Infinity].map((x) => f.formatSig(x))", None)
    assert specials == [p.format_sig(math.nan), p.format_sig(math.inf), p.format_sig(-math.inf)]
    assert run_js(page, "arg.map((x) => f.formatRate(x))", RATE_CASES) == [
        p.format_rate(x) for x in RATE_CASES
    ]
    assert run_js(page, "arg.map((x) => f.formatDuration(x))", DURATIONS) == [
        p.format_duration(x) for x in DURATIONS
    ]
    assert run_js(page, "arg.map((x) => f.formatHms(x))", DURATIONS) == [
        p.format_hms(x) for x in DURATIONS
    ]
    parsed = run_js(page, "arg.map((x) => f.parseIso(x))", ISO_CASES)
    for got, case in zip(parsed, ISO_CASES, strict=True):
        want = p.parse_iso(case)
        assert (got is None) == (want is None), case
        if want is not None:
            assert got == pytest.approx(want, abs=1e-6), case
    ago = [0, 4.9, 5, 59, 60, 3599, 3600, 86400, 10 * 86400]
    assert run_js(page, "arg.map((x) => f.relativeTime(1000000 - x, 1000000))", ago) == [
        p.relative_time(1_000_000 - x, 1_000_000) for x in ago
    ]
    steps: list[list[float | None]] = [
        [3700, 10000],
        [None, None],
        [5, None],
        [None, 10],
        [1234567, 2000000],
        [2.7, 10],
    ]
    assert run_js(page, "arg.map(([a, b]) => f.formatSteps(a, b))", steps) == [
        p.format_steps(a, b) for a, b in steps
    ]
    percents = [0, 37.0, 99.7, 100, 150, -3, "NaN", None]
    assert run_js(page, "arg.map((x) => f.formatPercent(x))", percents) == [
        list(p.format_percent(x)) for x in percents
    ]
    statuses = ["pending", "queued", "running", "completed", "failed", "cancelled", "bogus"]
    for stale in (False, True):
        got = run_js(page, f"arg.map((s) => f.badgeFor(s, {str(stale).lower()}))", statuses)
        assert got == [dataclasses.asdict(p.badge_for(s, stale)) for s in statuses]


JOBS: list[dict[str, Any]] = [
    {},
    {
        "id": "3f2a9c1e5b7d",
        "name": "llama-lora-r16",
        "status": "running",
        "progress": 37.0,
        "currentStep": 3700,
        "totalSteps": 10000,
        "currentLoss": 0.4213449,
        "metrics": {"lr": 0.0003, "grad_norm": "Infinity", "acc": 0.91234, "b": 1, "z": 2},
        "createdAt": "2025-12-01T10:00:00.000000Z",
        "startedAt": "2025-12-01T10:00:05.250000Z",
        "finishedAt": None,
        "updatedAt": "2025-12-01T10:20:00.000000Z",
        "lastSeenAt": "2025-12-01T10:20:00.000000Z",
        "stale": False,
        "cancelRequested": True,
        "error": None,
        "executor": "local",
        "command": {"argv": ["python", "train.py", "--lr=3e-4"]},
    },
    {
        "id": "aaaaaaaaaaaa",
        "name": "<img src=x onerror=alert(1)>",
        "status": "failed",
        "progress": 12.5,
        "currentStep": 1,
        "totalSteps": 8,
        "currentLoss": "NaN",
        "createdAt": "2025-11-30T10:00:00Z",
        "startedAt": "2025-11-30T10:00:01Z",
        "finishedAt": "2025-11-30T11:00:00Z",
        "updatedAt": "2025-11-30T11:00:00Z",
        "error": "lost contact: no report for 60 s",
        "executor": "sdk",
    },
    {
        "id": "bbbbbbbbbbbb",
        "name": "quiet",
        "status": "running",
        "progress": 0,
        "currentStep": None,
        "totalSteps": None,
        "currentLoss": None,
        "stale": True,
        "createdAt": "2025-12-01T10:00:00Z",
        "startedAt": "garbage",
        "lastSeenAt": None,
        "updatedAt": "2025-12-01T10:00:00Z",
    },
    {
        "id": "cccccccccccc",
        "name": "old",
        "status": "completed",
        "progress": 100,
        "createdAt": "2025-12-01T10:00:00Z",
        "startedAt": "2025-12-01T09:00:00Z",
        "finishedAt": None,
        "updatedAt": "2025-12-01T10:30:00Z",
        "currentLoss": -1e-9,
    },
]


@pytest.mark.parametrize("job", JOBS, ids=lambda j: str(j.get("status", "blank")))
def test_card_view_is_identical(page: Page, server: Server, job: dict[str, Any]) -> None:
    page.goto(server.url)
    for now in (NOW, p.parse_iso("2025-12-01T10:20:03Z") or 0.0):
        got = run_js(page, "f.cardView(arg[0], arg[1])", [job, now])
        assert got == as_js(p.card_view(job, now))
        got = run_js(page, "f.rowView(arg[0], arg[1])", [job, now])
        assert got == as_js(p.row_view(job, now))


CANONICAL = (
    """
async () => {
"""
    + ASSET
    + """
  const card = await import(asset('card.js'));
  const row = await import(asset('row.js'));
  const f = await import(asset('format.js'));
  const html = await (await fetch('/')).text();
  // Parsed, not run: this is the server's first paint as it came over the wire.
  const doc = new DOMParser().parseFromString(html, 'text/html');
  const renderedAt = Number(doc.querySelector('main').dataset.renderedAt);
  const canon = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return JSON.stringify(node.data);
    if (node.nodeType !== Node.ELEMENT_NODE) return '';
    const attrs = [...node.attributes].map((a) => `${a.name}=${JSON.stringify(a.value)}`).sort();
    return `<${node.localName} ${attrs.join(' ')}>` + [...node.childNodes].map(canon).join('') +
      `</${node.localName}>`;
  };
  const out = [];
  const compare = async (kind, selector, build) => {
    for (const served of doc.querySelectorAll(selector)) {
      const id = served.dataset.jobId;
      const job = await (await fetch(`/api/training/jobs/${id}`)).json();
      out.push([kind, id, canon(served), canon(build(job))]);
    }
  };
  await compare('card', 'main article[data-job-id]', (job) => {
    const built = card.createCard();
    card.applyCard(built, f.cardView(job, renderedAt));
    return built;
  });
  await compare('row', 'main #recent-list tr[data-job-id]', (job) => {
    const built = row.createRow();
    row.applyRow(built, f.rowView(job, renderedAt));
    return built;
  });
  return out;
}
"""
)


def test_server_and_browser_draw_the_same_card_and_row(page: Page, idle_server: Server) -> None:
    server, api = idle_server, idle_server.api
    api.create("pending <b>bold</b> & co", totalSteps=100)
    running = api.running(
        "running-run",
        step=250,
        total=1000,
        loss=0.123456,
        points=[{"step": 250, "loss": 0.123456, "metrics": {"lr": 1e-4}}],
    )
    failed = api.running("failing-run", step=3, total=10, loss="Infinity")
    api.report(failed, status="failed", error="RuntimeError: CUDA out of memory\nTried 2 GiB")
    done = api.running("done-run", step=10, total=10)
    api.report(done, status="completed")
    api.create("queued-run", command={"argv": ["python", "-c", "print('hi')"]})
    asked = api.running("asked-to-stop", step=1, total=5)
    assert api.cancel(asked).status_code == 200
    page.goto(server.url)
    compared = page.evaluate(CANONICAL)
    assert sorted(kind for kind, *_ in compared) == ["card"] * 4 + ["row"] * 2
    for kind, job_id, served, built in compared:
        assert served == built, (kind, job_id)
    assert {running, failed, done} <= {c[1] for c in compared}
