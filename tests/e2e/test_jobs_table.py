"""The table of every job: filters, search, sort and pages through the UI, the view in the URL,
live rows, the "new jobs" button, and rows that stop matching."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from e2e_harness import Api, Server
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

ROWS = "#jobs-rows tr"


def names(page: Page) -> list[str]:
    shown: list[str] = page.locator(f'{ROWS} [data-f="name"]').all_text_contents()
    return shown


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def seed(api: Api) -> dict[str, str]:
    """Six jobs with different names, tags, losses and ends."""
    made: dict[str, str] = {}
    for name, tags, loss, end in [
        ("llama-lora-a", ["sweep-3", "lora"], 0.9, "failed"),
        ("llama-lora-b", ["sweep-3"], 0.2, "cancelled"),
        ("mlp-small", ["sweep-3"], 0.5, "completed"),
        ("bert-base", ["baseline"], 0.7, "failed"),
        ("gpt2-lora", ["lora"], 0.4, None),
        ("vit-tiny", [], 0.1, None),
    ]:
        job = api.create(name, tags=tags, totalSteps=10)
        job_id = job["id"]
        api.report(job_id, status="running", currentStep=5, loss=loss)
        if end == "failed":
            api.report(job_id, status="failed", error=f"Traceback\nRuntimeError: {name} broke")
        elif end:
            api.report(job_id, status=end)
        made[name] = job_id
    return made


def test_filter_search_sort_and_the_url(page: Page, idle_server: Server, artifacts: Path) -> None:
    seed(idle_server.api)
    page.goto(idle_server.url)
    expect(page.locator(ROWS)).to_have_count(6)
    table = page.locator("#all-jobs")

    table.get_by_label("Failed").check()
    table.get_by_label("Cancelled").check()
    expect(page.locator(ROWS)).to_have_count(3)
    assert query_of(page)["status"] == ["failed,cancelled"]

    table.get_by_label("Search").fill("LORA")
    expect(page.locator(ROWS)).to_have_count(2)
    assert set(names(page)) == {"llama-lora-a", "llama-lora-b"}

    loss = table.get_by_role("columnheader", name="Loss")
    loss.get_by_role("button").click()
    expect(loss).to_have_attribute("aria-sort", "descending")
    expect(page.locator(ROWS).first).to_contain_text("llama-lora-a")
    loss.get_by_role("button").click()
    expect(loss).to_have_attribute("aria-sort", "ascending")
    expect(page.locator(ROWS).first).to_contain_text("llama-lora-b")
    assert query_of(page)["sort"] == ["loss"] and query_of(page)["q"] == ["LORA"]
    page.screenshot(path=artifacts / "jobs-table-filtered.png", full_page=True)

    # A reload and a pasted link show the same view.
    page.reload()
    expect(page.locator(ROWS)).to_have_count(2)
    assert names(page) == ["llama-lora-b", "llama-lora-a"]
    expect(table.get_by_label("Search")).to_have_value("LORA")
    expect(table.get_by_label("Failed")).to_be_checked()
    expect(table.get_by_label("Running")).not_to_be_checked()

    # Back and forward walk the views.
    table.get_by_label("Tag").fill("sweep-3")
    table.get_by_label("Tag").press("Enter")
    table.get_by_label("Tag").blur()
    expect(page.locator(ROWS)).to_have_count(2)
    table.get_by_label("Cancelled").uncheck()
    expect(page.locator(ROWS)).to_have_count(1)
    page.go_back()
    expect(page.locator(ROWS)).to_have_count(2)
    expect(table.get_by_label("Cancelled")).to_be_checked()

    table.get_by_role("button", name="Clear").click()
    expect(page.locator(ROWS)).to_have_count(6)
    assert urlsplit(page.url).query == "sort=loss", "Clear drops the filters, not the order"


def test_a_pasted_link_opens_its_view(page: Page, idle_server: Server) -> None:
    made = seed(idle_server.api)
    page.goto(idle_server.url + "/?status=failed,cancelled&q=lora&tag=sweep-3&sort=-finishedAt")
    expect(page.locator(ROWS)).to_have_count(2)
    header = page.locator("#all-jobs").get_by_role("columnheader", name="Finished")
    expect(header).to_have_attribute("aria-sort", "descending")
    assert names(page) == ["llama-lora-b", "llama-lora-a"]
    assert page.locator(ROWS).first.get_attribute("data-job-id") == made["llama-lora-b"]
    expect(page.locator("#all-jobs").get_by_label("Tag")).to_have_value("sweep-3")
    expect(page.locator("#table-status")).to_have_text("Jobs 1–2 of 2")


def test_pages_of_fifty(page: Page, idle_server: Server) -> None:
    ids = [idle_server.api.create(f"job-{i:03d}")["id"] for i in range(57)]
    page.goto(idle_server.url)
    status = page.locator("#table-status")
    expect(status).to_have_text("Jobs 1–50 of 57")
    assert page.locator(ROWS).first.get_attribute("data-job-id") == ids[-1]
    page.get_by_role("button", name="Next").click()
    expect(status).to_have_text("Jobs 51–57 of 57")
    expect(page.locator(ROWS)).to_have_count(7)
    assert page.locator(ROWS).last.get_attribute("data-job-id") == ids[0]
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(status).to_have_text("Jobs 1–50 of 57")
    nodes = page.evaluate("document.getElementsByTagName('*').length")
    assert nodes < 3_000


def test_rows_update_live_and_new_jobs_wait_behind_a_button(
    page: Page, idle_server: Server
) -> None:
    api = idle_server.api
    job_id = api.running("watched", step=1, total=10)
    page.goto(idle_server.url + "/?status=running")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    row = page.locator(f'{ROWS}[data-job-id="{job_id}"]')
    expect(row.locator('[data-f="steps"]')).to_have_text("1 / 10")
    api.report(job_id, currentStep=7)
    expect(row.locator('[data-f="steps"]')).to_have_text("7 / 10")

    # A new job that matches does not push the rows around: a button says it is there.
    newcomer = api.running("newcomer", step=0, total=5)
    api.create("pending-does-not-match")
    pill = page.locator("#new-jobs")
    expect(pill).to_have_text("1 new job — show")
    expect(page.locator(ROWS)).to_have_count(1)

    # A row that stops matching stays, marked, until the next load.
    api.report(job_id, status="completed", currentStep=10)
    expect(row).to_have_attribute("data-unmatched", "true")
    expect(row.get_by_text("no longer matches")).to_be_visible()

    pill.click()
    expect(pill).to_be_hidden()
    expect(page.locator(ROWS)).to_have_count(1)
    assert page.locator(ROWS).first.get_attribute("data-job-id") == newcomer
