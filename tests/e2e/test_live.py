"""Live updates: the event stream, the 5 s polling fallback, resuming, and a real SDK run."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_harness import TOKEN, Api, Server, live_item, start_server, stop_server
from playwright.sync_api import Page, Request, Route, expect

pytestmark = pytest.mark.e2e

# While the stream is down the page asks for every job it shows in one request.
POLL = "**/api/training/jobs?ids=*"


def is_poll(request: Request) -> bool:
    return "/api/training/jobs?ids=" in request.url


def next_frames(page: Page) -> None:
    """Let the page apply what it has received (updates land on the next animation frame)."""
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


# A training script driven line by line from stdin, so the test decides when each step happens.
SCRIPT = """
import sys, trainmon
run = trainmon.init(name="sdk-run", total_steps=100)
print(run.id, flush=True)
for line in sys.stdin:
    step, loss = line.split()
    run.log(step=int(step), loss=float(loss))
run.finish()
"""


def test_a_real_sdk_run_shows_up_and_moves(page: Page, server: Server) -> None:
    page.goto(server.url)
    expect(page.locator("#conn")).to_have_text("Live")
    env = {**os.environ, "TRAINMON_URL": server.url, "TRAINMON_TOKEN": TOKEN}
    env.pop("TRAINMON_JOB_ID", None)
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        card = live_item(page, job_id)
        expect(card.locator('[data-f="badge"]')).to_have_text("Running")
        proc.stdin.write("42 0.5\n")
        proc.stdin.flush()
        expect(card.locator('[data-f="steps"]')).to_have_text("42 / 100")
        expect(card.locator('[data-f="loss"]')).to_have_text("0.5")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    expect(card.locator('[data-f="badge"]')).to_have_text("Completed")


def test_falls_back_to_polling_and_resumes_the_stream(page: Page, server: Server, api: Api) -> None:
    job_id = api.running("through-an-outage", step=1, total=100)
    page.route("**/api/training/events", lambda route: route.abort())
    page.goto(server.url)
    conn = page.locator("#conn")
    expect(conn).to_have_attribute("data-state", "down")
    expect(conn).to_contain_text("every 5 s")
    api.report(job_id, currentStep=60)
    card = live_item(page, job_id)
    expect(card.locator('[data-f="steps"]')).to_have_text("60 / 100", timeout=15_000)
    # A job that finished while we poll comes back in the same request, finished.
    api.report(job_id, status="completed", currentStep=100)
    expect(card.locator('[data-f="badge"]')).to_have_text("Completed", timeout=15_000)

    page.unroute("**/api/training/events")
    expect(conn).to_have_text("Live", timeout=20_000)
    later = api.running("after-the-outage", step=3, total=9)
    expect(page.locator(f'article[data-job-id="{later}"] [data-f="steps"]')).to_have_text("3 / 9")


def test_resyncs_after_the_server_restarts(page: Page, tmp_path: Path) -> None:
    server = start_server(tmp_path, "--no-executor")
    job_id = server.api.running("survives-restarts", step=5, total=50)
    page.goto(server.url)
    conn = page.locator("#conn")
    expect(conn).to_have_text("Live")
    stop_server(server)
    expect(conn).to_have_attribute("data-state", "down")
    server = start_server(tmp_path, "--no-executor", port=server.port)
    try:
        server.api.seqs[job_id] = itertools.count(1000)  # the first server stored seq 1
        server.api.report(job_id, currentStep=25)
        gone = server.api.create("born-while-away")
        expect(conn).to_have_text("Live", timeout=20_000)
        card = live_item(page, job_id)
        expect(card.locator('[data-f="steps"]')).to_have_text("25 / 50")
        expect(page.locator(f'article[data-job-id="{gone["id"]}"]')).to_be_visible()
    finally:
        stop_server(server)


def test_hidden_tab_stops_polling(page: Page, server: Server, api: Api) -> None:
    page.clock.install()
    api.running("hidden-tab", step=1, total=10)
    polls: list[Request] = []
    page.on("request", lambda r: polls.append(r) if is_poll(r) else None)
    page.route("**/api/training/events", lambda route: route.abort())
    page.goto(server.url)
    expect(page.locator("#conn")).to_have_attribute("data-state", "down")
    # One 5 s step at a time: the next poll is timed from when the last one answered, which
    # takes real time a single long jump of the fake clock would not wait for.
    for _ in range(2):
        with page.expect_request(is_poll):
            page.clock.run_for(5_500)
    assert len(polls) >= 2
    page.evaluate(
        """() => {
            Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
            document.dispatchEvent(new Event('visibilitychange'));
        }"""
    )
    seen = len(polls)
    page.clock.run_for(30_000)
    next_frames(page)
    assert len(polls) == seen, "a hidden tab kept polling"
    with page.expect_request(is_poll):
        page.evaluate(
            """() => {
                Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
                document.dispatchEvent(new Event('visibilitychange'));
            }"""
        )


def test_an_older_answer_never_overwrites_a_newer_one(page: Page, server: Server, api: Api) -> None:
    job_id = api.running("out-of-order", step=10, total=100)
    stale_copy = api.get(job_id)  # step 10, the older version
    api.report(job_id, currentStep=70)
    page.goto(server.url)
    card = live_item(page, job_id)
    expect(card.locator('[data-f="steps"]')).to_have_text("70 / 100")

    # The stream drops, and the poll that follows answers with the older version.
    def old_answer(route: Route) -> None:
        body = {"jobs": [stale_copy], "total": 1, "nextCursor": None}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route(POLL, old_answer)
    page.route("**/api/training/events", lambda route: route.abort())
    with page.expect_response(lambda r: is_poll(r.request)):
        page.reload()
    next_frames(page)
    expect(card.locator('[data-f="steps"]')).to_have_text("70 / 100")
