"""On loopback anyone on the machine may watch; cancelling needs a signed-in session. Also the
offline API reference under the page's CSP."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from e2e_harness import TOKEN, Api, Server, sign_in
from playwright.sync_api import ConsoleMessage, Page, Request, expect

pytestmark = pytest.mark.e2e


def test_cancel_without_signing_in_says_how(
    page: Page, server: Server, api: Api, artifacts: Path
) -> None:
    job_id = api.running("unsigned-run", step=3, total=10)
    cancels: list[str] = []
    page.on("request", lambda r: cancels.append(r.url) if r.url.endswith("/cancel") else None)
    page.goto(server.url)
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    button = page.get_by_role("button", name="Cancel unsigned-run", exact=True)
    button.click()
    dialog = page.get_by_role("dialog", name="Sign in to cancel")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("unsigned-run")
    expect(dialog).to_contain_text("trainmon sign-in-link")
    expect(dialog).to_contain_text(f"trainmon cancel {job_id}")
    page.screenshot(path=artifacts / "sign-in-to-cancel.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    assert cancels == []
    assert api.get(job_id)["cancelRequested"] is False

    button.click()
    dialog.get_by_role("link", name="Sign in").click()
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(server.url + "/")
    page.get_by_role("button", name="Cancel unsigned-run", exact=True).click()
    confirm = page.get_by_role("dialog", name="Cancel this training?")
    # Wait for the answer: the card looks the same ("running") before and after the request.
    with page.expect_response("**/cancel") as response:
        confirm.get_by_role("button", name="Cancel job", exact=True).click()
    assert response.value.ok
    card = page.locator(f'article[data-job-id="{job_id}"]')
    expect(card.get_by_role("button", name="Cancelling unsigned-run")).to_be_disabled()
    expect(card).to_have_attribute("data-status", "running")
    assert api.get(job_id)["cancelRequested"] is True


def test_sign_out_ends_the_session(page: Page, server: Server, api: Api) -> None:
    job_id = api.running("after-sign-out")
    sign_in(page, server)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert page.request.get(server.url + "/api/auth/csrf").status == 401
    page.get_by_role("button", name="Cancel after-sign-out", exact=True).click()
    expect(page.get_by_role("dialog", name="Sign in to cancel")).to_be_visible()
    assert api.get(job_id)["cancelRequested"] is False


def test_a_session_that_ended_elsewhere_reads_as_sign_in_again(
    page: Page, server: Server, api: Api
) -> None:
    job_id = api.running("stale-session")
    sign_in(page, server)
    page.goto(server.url)
    page.context.clear_cookies()  # the session ended (signed out in another tab, expired)
    page.get_by_role("button", name="Cancel stale-session", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel job", exact=True).click()
    alert = page.locator(f'article[data-job-id="{job_id}"] [data-f="cancel-error"]')
    expect(alert).to_have_text("Could not cancel: your sign-in has ended. Sign in and try again.")
    assert api.get(job_id)["cancelRequested"] is False


def test_the_api_reference_works_offline_under_the_csp(
    page: Page, server: Server, artifacts: Path
) -> None:
    problems: list[str] = []
    foreign: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    def on_request(request: Request) -> None:
        host = urlsplit(request.url).hostname
        if request.url.startswith("http") and host != "127.0.0.1":
            foreign.append(request.url)

    page.on("console", on_console)
    page.on("request", on_request)
    page.goto(server.url + "/docs")
    expect(page.get_by_role("heading", name="trainmon")).to_be_visible()
    expect(page.get_by_text("/api/training/jobs/{job_id}/cancel").first).to_be_visible()
    page.screenshot(path=artifacts / "api-docs.png")
    assert foreign == []
    assert not [p for p in problems if "Content Security Policy" in p], problems
