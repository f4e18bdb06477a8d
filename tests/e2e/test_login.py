"""Bound beyond loopback, the page asks for the token once and keeps a session cookie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import TOKEN, Server, start_server, stop_server
from playwright.sync_api import BrowserContext, Page, expect

pytestmark = pytest.mark.e2e


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[Server]:
    # 0.0.0.0 is "beyond loopback" for the server; the browser still talks to 127.0.0.1.
    server = start_server(tmp_path, "--no-executor", host="0.0.0.0")
    yield server
    stop_server(server)


def test_sign_in_once_then_live(page: Page, context: BrowserContext, exposed: Server) -> None:
    job_id = exposed.api.running("remote-run", step=2, total=4)
    page.goto(exposed.url)
    expect(page).to_have_url(exposed.url + "/login")
    token = page.get_by_label("Token")
    expect(token).to_be_focused()
    token.fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not this server's.")
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(exposed.url + "/")
    expect(page.locator("#conn")).to_have_text("Live")
    card = page.locator(f'article[data-job-id="{job_id}"]')
    expect(card.locator('[data-f="steps"]')).to_have_text("2 / 4")
    cookie = next(c for c in context.cookies() if c["name"] == "trainmon_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert TOKEN not in page.content()
    exposed.api.report(job_id, currentStep=3)
    expect(card.locator('[data-f="steps"]')).to_have_text("3 / 4")
    # A second visit needs no sign-in.
    page.goto(exposed.url + "/login")
    expect(page).to_have_url(exposed.url + "/")
