"""The page takes its ordering and the size of its live sections from the server (data
attributes on <main>, defined once in Python), so live.js places and drops cards exactly as
pages.py draws them."""

from __future__ import annotations

import pytest
from e2e_harness import Api, Server
from playwright.sync_api import Page, expect

from trainmon.server.routes.pages import SORT_FIELDS
from trainmon.service import ACTIVE_SHOWN, RECENT_SHOWN

pytestmark = pytest.mark.e2e

ORDER = (
    "(list) => [...document.querySelectorAll(`#${list} [data-job-id]`)].map((c) => c.dataset.jobId)"
)


def order(page: Page, section: str) -> list[str]:
    ids: list[str] = page.evaluate(ORDER, f"{section}-list")
    return ids


def finish(api: Api, name: str) -> str:
    job_id = api.running(name, step=1, total=2)
    api.report(job_id, status="completed", currentStep=2)
    return job_id


def test_the_page_carries_the_servers_constants(page: Page, idle_server: Server) -> None:
    page.goto(idle_server.url)
    main = page.locator("main")
    assert main.get_attribute("data-active-max") == str(ACTIVE_SHOWN)
    assert main.get_attribute("data-recent-max") == str(RECENT_SHOWN)
    assert main.get_attribute("data-sort-active") == " ".join(SORT_FIELDS["active"])
    assert main.get_attribute("data-sort-recent") == " ".join(SORT_FIELDS["recent"])


def test_live_placement_is_the_first_paint_order(page: Page, idle_server: Server) -> None:
    api = idle_server.api
    first = [api.create(f"pending-{i}")["id"] for i in range(2)]
    done = [finish(api, "done-0")]
    page.goto(idle_server.url)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    first.append(api.create("pending-live")["id"])
    done.append(finish(api, "done-live"))
    expect(page.locator("#active-list [data-job-id]")).to_have_count(3)
    expect(page.locator("#recent-list [data-job-id]")).to_have_count(2)
    live = order(page, "active"), order(page, "recent")
    assert live[0][0] == first[-1] and live[1][0] == done[-1]  # newest first
    page.reload()
    assert (order(page, "active"), order(page, "recent")) == live


def test_recently_finished_keeps_the_last_ones_whatever_their_age(
    page: Page, idle_server: Server
) -> None:
    api = idle_server.api
    done = [finish(api, f"done-{i}") for i in range(RECENT_SHOWN + 2)]
    page.clock.install()
    page.goto(idle_server.url)
    cards = page.locator("#recent-list [data-job-id]")
    expect(cards).to_have_count(RECENT_SHOWN)
    assert order(page, "recent") == done[::-1][:RECENT_SHOWN]
    page.clock.run_for(2 * 3600 * 1000)  # hours later they are still the last to finish
    expect(cards).to_have_count(RECENT_SHOWN)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    newest = finish(api, "done-live")
    expect(cards.first).to_have_attribute("data-job-id", newest)
    expect(cards).to_have_count(RECENT_SHOWN)
