"""The live sections stay bounded and say what they leave out; the page says when it has lost
the server and recovers cleanly; finished jobs are announced; cards tell a stalled loop, a
step past its total and a traceback's last line; the page passes axe-core in both schemes."""

from __future__ import annotations

from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from e2e_harness import Server, sign_in, start_server, stop_server
from playwright.sync_api import Page, expect

from trainmon.service import ACTIVE_SHOWN

pytestmark = pytest.mark.e2e

CARDS = "#active-list article[data-job-id]"


def test_the_active_section_shows_the_newest_and_counts_the_rest(
    page: Page, idle_server: Server
) -> None:
    api = idle_server.api
    ids = [api.create(f"queued-{i:02d}")["id"] for i in range(ACTIVE_SHOWN + 3)]
    page.goto(idle_server.url)
    expect(page.locator(CARDS)).to_have_count(ACTIVE_SHOWN)
    assert page.locator(CARDS).first.get_attribute("data-job-id") == ids[-1]
    more = page.locator("#active-more")
    expect(more).to_have_text(
        f"Showing the {ACTIVE_SHOWN} newest of {ACTIVE_SHOWN + 3} active jobs. "
        "All active jobs in the table"
    )
    expect(page.locator("#active-count")).to_have_text(str(ACTIVE_SHOWN + 3))
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")

    newest = api.create("queued-live")["id"]
    expect(page.locator(CARDS).first).to_have_attribute("data-job-id", newest)
    expect(page.locator(CARDS)).to_have_count(ACTIVE_SHOWN)
    expect(page.locator("#active-count")).to_have_text(str(ACTIVE_SHOWN + 4))

    more.get_by_role("link").click()
    expect(page.locator("#jobs-rows tr")).to_have_count(ACTIVE_SHOWN + 4)
    expect(page.locator("#all-jobs").get_by_label("Pending")).to_be_checked()


def test_outage_banner_then_a_clean_recovery(page: Page, tmp_path: Path) -> None:
    server = start_server(tmp_path, "--no-executor")
    job_id = server.api.running("through-the-outage", step=1, total=10)
    sign_in(page, server)
    card = page.locator(f'article[data-job-id="{job_id}"]')
    expect(page.locator("#conn")).to_have_text("Live")
    stop_server(server)
    banner = page.locator("#outage")
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner).to_contain_text("Connection lost — retrying…")
    expect(banner).to_contain_text("last update")
    expect(page.locator("main")).to_have_attribute("data-live", "false")
    elapsed = card.locator('[data-f="elapsed"]').text_content()
    age = page.locator("#outage-age")
    before = age.text_content() or ""
    expect(age).not_to_have_text(before, timeout=3_000)  # a tick has passed...
    assert card.locator('[data-f="elapsed"]').text_content() == elapsed  # ...and it stood still

    # A cancel tried meanwhile fails with the browser's words; recovery must not leave them.
    card.get_by_role("button", name="Cancel through-the-outage", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel job", exact=True).click()
    error = card.locator('[data-f="cancel-error"]')
    expect(error).to_have_text("Could not cancel: the server cannot be reached. You can try again.")

    server = start_server(tmp_path, "--no-executor", port=server.port)
    try:
        expect(banner).to_be_hidden(timeout=20_000)
        expect(page.locator("#conn")).to_have_text("Live")
        expect(page.locator("main")).to_have_attribute("data-live", "true")
        expect(error).to_be_hidden()
        expect(page.get_by_text("Failed to fetch")).to_have_count(0)
    finally:
        stop_server(server)


def test_finished_jobs_are_announced_and_show_their_error(page: Page, idle_server: Server) -> None:
    api = idle_server.api
    job_id = api.running("mlp-7", step=3, total=10)
    page.goto(idle_server.url)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    trace = 'Traceback (most recent call last):\n  File "train.py", line 9\nValueError: loss is NaN'
    api.report(job_id, status="failed", error=trace)
    expect(page.locator("#announcer")).to_have_text("mlp-7 failed")
    row = page.locator(f'#recent-list tr[data-job-id="{job_id}"]')
    summary = row.locator("summary")
    expect(summary).to_have_text("ValueError: loss is NaN")
    expect(row.locator("pre")).to_be_hidden()
    summary.click()
    expect(row.locator("pre")).to_have_text(trace)


def test_cards_tell_stalls_and_steps_past_the_total(page: Page, idle_server: Server) -> None:
    api = idle_server.api
    stalled = api.running("stalled", step=50, total=100)
    past = api.running("past-total", step=15, total=10)
    page.clock.install()
    page.goto(idle_server.url)

    def field(job_id: str, name: str) -> str:
        return f'article[data-job-id="{job_id}"] [data-f="{name}"]'

    expect(page.locator(field(past, "steps"))).to_have_text("15 / 10 (past total)")
    expect(page.locator(field(past, "percent"))).to_have_text("100%")
    eta = page.locator(field(stalled, "eta"))
    expect(eta).not_to_contain_text("stalled")
    page.clock.run_for(120_000)
    expect(eta).to_contain_text("stalled 2m")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_problem(
    page: Page, idle_server: Server, scheme: str, artifacts: Path
) -> None:
    api = idle_server.api
    api.create("pending-one", tags=["sweep-1"])
    running = api.running("running-one", step=3, total=10, loss=0.5)
    stale = api.running("stale-one", step=3, total=10)
    failed = api.running("failed-one", step=2, total=10)
    api.report(failed, status="failed", error="Traceback\nRuntimeError: boom")
    done = api.running("done-one", step=10, total=10)
    api.report(done, status="completed")
    assert running and stale
    page.emulate_media(color_scheme=scheme)
    page.goto(idle_server.url)
    expect(page.locator("#jobs-rows tr")).to_have_count(5)
    page.screenshot(path=artifacts / f"dashboard-{scheme}.png", full_page=True)
    found = Axe().run(page).response["violations"]
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
