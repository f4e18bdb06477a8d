"""Cancelling from the page: the dialog, the request, its failure, and keyboard-only use."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from e2e_harness import Api, Server, live_item, sign_in
from playwright.sync_api import Page, Route, expect

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _signed_in(page: Page, server: Server) -> None:
    """Cancelling from the page needs a signed-in session (test_sign_in.py: without one)."""
    sign_in(page, server)


def test_dialog_dismisses_then_confirm_cancels(
    page: Page, server: Server, api: Api, artifacts: Path
) -> None:
    # A script-reported job: its status changes only when "the script" (this test) says so,
    # so the in-between "Cancelling…" state can be seen.
    job_id = api.running("gpt-small", step=120, total=1000, loss=3.2)
    page.goto(server.url)
    card = page.locator(f'article[data-job-id="{job_id}"]')
    button = card.get_by_role("button", name="Cancel gpt-small", exact=True)
    expect(button).to_have_attribute("title", "Cancel job")
    dialog = page.get_by_role("dialog")

    button.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("gpt-small")
    expect(dialog.get_by_role("heading")).to_have_text("Cancel this training?")
    page.screenshot(path=artifacts / "cancel-dialog-desktop.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()

    button.click()
    dialog.get_by_role("button", name="Keep running").click()
    expect(dialog).to_be_hidden()
    assert api.get(job_id)["cancelRequested"] is False

    button.click()
    with page.expect_response("**/cancel") as response:
        dialog.get_by_role("button", name="Cancel job", exact=True).click()
    assert response.value.ok
    expect(dialog).to_be_hidden()
    busy = card.get_by_role("button", name="Cancelling gpt-small")
    expect(busy).to_be_disabled()
    expect(busy).to_contain_text("Cancelling…")
    assert api.get(job_id)["cancelRequested"] is True
    expect(card.locator('[data-f="badge"]')).to_have_text("Running")  # not cancelled yet

    answer = api.report(job_id, status="cancelled")  # the script stops at its next report
    assert answer["status"] == "cancelled"
    # The job has ended: its card gives way to a row among the recently finished.
    row = page.locator(f'#recent-list [data-job-id="{job_id}"]')
    expect(row.locator('[data-f="badge"]')).to_have_text("Cancelled")
    expect(card).to_have_count(0)


def test_confirm_cancels_a_real_running_process(page: Page, server: Server, api: Api) -> None:
    script = "import time\nfor i in range(100000):\n    print(i, flush=True)\n    time.sleep(0.1)\n"
    job = api.create(
        "real-process", command={"argv": [sys.executable, "-c", script]}, graceSeconds=5
    )
    page.goto(server.url)
    item = live_item(page, job["id"])
    expect(item.locator('[data-f="badge"]')).to_have_text("Running", timeout=20_000)
    item.get_by_role("button", name="Cancel real-process", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel job", exact=True).click()
    expect(item.locator('[data-f="badge"]')).to_have_text("Cancelled", timeout=20_000)
    final = api.get(job["id"])
    assert final["status"] == "cancelled"
    assert final["finishedAt"] is not None
    expect(item.locator('[data-f="finished"]')).to_have_attribute("datetime", final["finishedAt"])


def test_cancel_failure_is_readable_and_can_be_retried(
    page: Page, server: Server, api: Api
) -> None:
    job_id = api.create("flaky-network", totalSteps=10)["id"]
    page.goto(server.url)
    card = live_item(page, job_id)
    failures = {"left": 1}

    def flaky(route: Route) -> None:
        if failures["left"]:
            failures["left"] -= 1
            body = {"error": {"code": "unavailable", "message": "the server is restarting"}}
            route.fulfill(status=503, content_type="application/json", body=json.dumps(body))
        else:
            route.continue_()

    page.route("**/api/training/jobs/*/cancel", flaky)
    button = card.get_by_role("button", name="Cancel flaky-network", exact=True)
    button.click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel job", exact=True).click()
    alert = card.get_by_role("alert")
    expect(alert).to_have_text("Could not cancel: the server is restarting. You can try again.")
    expect(button).to_be_enabled()

    button.click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel job", exact=True).click()
    expect(card.locator('[data-f="badge"]')).to_have_text("Cancelled")  # pending: at once
    expect(alert).to_have_count(0)
    assert api.get(job_id)["status"] == "cancelled"


def test_cancel_with_the_keyboard_only(page: Page, server: Server, api: Api) -> None:
    job_id = api.running("keyboard-run", step=5, total=50)
    page.goto(server.url)
    button = page.get_by_role("button", name="Cancel keyboard-run", exact=True)
    for _ in range(10):
        page.keyboard.press("Tab")
        if button.evaluate("el => el === document.activeElement"):
            break
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Keep running")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()

    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Cancel job", exact=True)).to_be_focused()
    with page.expect_response("**/cancel") as response:
        page.keyboard.press("Enter")
    assert response.value.ok
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Cancelling keyboard-run")).to_be_disabled()
    assert api.get(job_id)["cancelRequested"] is True
    # Focus moves to the job's status, not back to the top of the page.
    expect(live_item(page, job_id).locator('[data-f="badge"]')).to_be_focused()


def test_cancel_sends_csrf_not_the_write_token(page: Page, server: Server, api: Api) -> None:
    job_id = api.create("csrf-check")["id"]
    page.goto(server.url)
    assert "e2e-token-0123456789" not in page.content()
    with page.expect_request("**/cancel") as request_info:
        page.get_by_role("button", name="Cancel csrf-check", exact=True).click()
        page.get_by_role("dialog").get_by_role("button", name="Cancel job", exact=True).click()
    headers = request_info.value.headers
    assert "authorization" not in headers
    assert headers.get("x-csrf-token")
    expect(live_item(page, job_id).locator('[data-f="badge"]')).to_have_text("Cancelled")
