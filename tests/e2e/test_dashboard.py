"""What a person sees on the dashboard, in a real browser against a real server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from e2e_harness import Api, Server, live_item
from playwright.sync_api import Dialog, Page, expect

pytestmark = pytest.mark.e2e


def card(page: Page, job_id: str) -> object:
    return page.locator(f'article[data-job-id="{job_id}"]')


def test_empty_state_says_how_to_start(page: Page, server: Server, artifacts: Path) -> None:
    page.goto(server.url)
    empty = page.locator("#empty")
    expect(empty).to_be_visible()
    expect(empty).to_contain_text("No training is running")
    expect(empty).to_contain_text("trainmon run -- python train.py")
    expect(empty).to_contain_text("run = trainmon.init(")
    expect(page.locator("#conn")).to_have_text("Live")
    page.screenshot(path=artifacts / "empty-desktop.png", full_page=True)


def test_card_shows_every_field(page: Page, server: Server, api: Api, artifacts: Path) -> None:
    job_id = api.running(
        "llama-lora-r16",
        step=3700,
        total=10000,
        loss=0.421349,
        points=[{"step": 3700, "loss": 0.421349, "metrics": {"lr": 0.0003}}],
    )
    page.goto(server.url)
    c = page.locator(f'article[data-job-id="{job_id}"]')
    expect(c.get_by_role("heading", name="llama-lora-r16")).to_be_visible()
    expect(c.locator("time")).to_have_text("just now")
    expect(c.locator("time")).to_have_attribute(
        "title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    )
    expect(c.locator('[data-f="badge"]')).to_have_text("Running")
    bar = c.get_by_role("progressbar")
    expect(bar).to_have_attribute("value", "37.00")
    expect(c.locator('[data-f="percent"]')).to_have_text("37%")
    expect(c.locator('[data-f="elapsed"]')).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(c.locator('[data-f="steps"]')).to_have_text("3,700 / 10,000")
    expect(c.locator('[data-f="loss"]')).to_have_text("0.4213")
    expect(c.locator('[data-f="rate-box"]')).to_be_visible()
    expect(c.locator('[data-f="eta-box"]')).to_be_visible()
    expect(c.locator('[data-f="extra"]')).to_have_text("lr 0.0003")
    expect(c.get_by_role("button", name="Cancel llama-lora-r16")).to_have_attribute(
        "title", "Cancel job"
    )
    page.screenshot(path=artifacts / "card-desktop.png", full_page=True)


def test_progress_moves_live_and_new_jobs_appear(page: Page, server: Server, api: Api) -> None:
    job_id = api.running("resnet50", step=10, total=1000, loss=2.5)
    page.goto(server.url)
    c = page.locator(f'article[data-job-id="{job_id}"]')
    expect(c.locator('[data-f="steps"]')).to_have_text("10 / 1,000")
    api.report(job_id, points=[{"step": 500, "loss": 0.75}])
    expect(c.locator('[data-f="steps"]')).to_have_text("500 / 1,000")
    expect(c.locator('[data-f="percent"]')).to_have_text("50%")
    expect(c.get_by_role("progressbar")).to_have_attribute("value", "50.00")
    expect(c.locator('[data-f="loss"]')).to_have_text("0.75")

    later = api.create("bert-finetune", totalSteps=200)
    fresh = page.locator(f'article[data-job-id="{later["id"]}"]')
    expect(fresh.locator('[data-f="badge"]')).to_have_text("Pending")
    expect(fresh.locator('[data-f="elapsed"]')).to_have_text("--:--:--")
    # Newest first among active jobs.
    expect(page.locator("#active-list > article").first).to_have_attribute(
        "data-job-id", later["id"]
    )
    expect(page.locator("#active-count")).to_have_text("2")


def test_elapsed_ticks_then_freezes(page: Page, server: Server, api: Api) -> None:
    page.clock.install()
    job_id = api.running("ticking", step=1, total=100)
    page.goto(server.url)
    elapsed = page.locator(f'article[data-job-id="{job_id}"] [data-f="elapsed"]')
    expect(elapsed).to_have_text(re.compile(r"^00:00:0\d$"))
    page.clock.run_for(65_000)
    expect(elapsed).to_have_text(re.compile(r"^00:01:0\d$"))

    api.report(job_id, status="completed", currentStep=100)
    # Finished jobs move below the active ones, as rows with their final badge and run time.
    row = page.locator(f'#recent-list [data-job-id="{job_id}"]')
    expect(row.locator('[data-f="badge"]')).to_have_text("Completed")
    expect(elapsed).to_have_count(0)
    duration = row.locator('[data-f="duration"]')
    frozen = duration.inner_text()
    assert re.fullmatch(r"\ds", frozen), frozen  # the real run time, not the page's clock
    page.clock.run_for(10_000)
    expect(duration).to_have_text(frozen)
    expect(page.locator("#empty")).to_be_visible()


def test_bad_timestamp_never_breaks_elapsed(page: Page, server: Server, api: Api) -> None:
    api.running("clock-check", step=1, total=10)
    page.goto(server.url)
    shown = page.evaluate(
        """async () => {
            const live = document.querySelector('script[type=module]').src;
            const f = await import(new URL('format.js', live).href);
            return [f.formatElapsed('not a date', 0), f.formatElapsed(null, 0),
                    f.formatElapsed('2026-02-30T00:00:00Z', 0), f.formatElapsed(42, 0)];
        }"""
    )
    assert shown == ["--:--:--"] * 4


def test_every_status_has_its_badge(page: Page, tmp_path: Path, artifacts: Path) -> None:
    from e2e_harness import start_server, stop_server

    # Short liveness intervals so "stale" and "lost contact" happen within the test; no
    # executor, so the queued job stays queued.
    server = start_server(
        tmp_path, "--heartbeat-interval", "0.5", "--lost-contact-timeout", "2.5", "--no-executor"
    )
    api = server.api
    try:
        ids = {}
        ids["pending"] = api.create("waiting-for-script")["id"]
        ids["queued"] = api.create("queued-run", command={"argv": ["python", "train.py"]})["id"]
        ids["completed"] = api.running("done-run", step=100, total=100)
        api.report(ids["completed"], status="completed")
        ids["failed"] = api.running("diverged-run", step=40, total=100, loss="NaN")
        api.report(ids["failed"], status="failed", error="ValueError: loss is NaN at step 40")
        ids["cancelled"] = api.create("abandoned")["id"]
        assert api.cancel(ids["cancelled"]).status_code == 200
        ids["lost"] = api.running("silent-run", step=5, total=100)
        page.goto(server.url)
        expected = {
            "pending": ("Pending", "secondary", "#i-clock"),
            "queued": ("Queued", "secondary", "#i-clock"),
            "completed": ("Completed", "default", None),
            "failed": ("Failed", "destructive", None),
            "cancelled": ("Cancelled", "outline", None),
        }
        for key, (text, variant, icon) in expected.items():
            badge = live_item(page, ids[key]).locator('[data-f="badge"]')
            expect(badge).to_have_text(text)
            expect(badge).to_have_attribute("data-variant", variant)
            if icon:  # cards carry an icon; rows stay lean
                expect(badge.locator("use")).to_have_attribute("href", icon)
        failed = live_item(page, ids["failed"])
        expect(failed.locator('[data-f="error"]')).to_have_text(
            "ValueError: loss is NaN at step 40"
        )
        expect(failed.locator('[data-f="loss"]')).to_have_text("NaN")
        expect(failed.locator('[data-f="loss"]')).to_have_attribute("data-bad", "true")
        # Only active jobs can be cancelled: finished ones are rows, without the button.
        for key in ("completed", "failed", "cancelled"):
            expect(live_item(page, ids[key]).locator('[data-f="cancel"]')).to_have_count(0)
        for key in ("pending", "queued"):
            expect(live_item(page, ids[key]).locator('[data-f="cancel"]')).to_be_visible()

        # A running job whose reporter went quiet: first stale, then failed with lost contact.
        silent = live_item(page, ids["lost"])
        badge = silent.locator('[data-f="badge"]')
        expect(badge).to_have_text("Stale", timeout=10_000)
        expect(badge).to_have_attribute("data-variant", "warning")
        expect(silent.locator('[data-f="stale"]')).to_contain_text("No report for")
        page.screenshot(path=artifacts / "badges-desktop.png", full_page=True)
        expect(badge).to_have_text("Failed", timeout=10_000)
        expect(silent.locator('[data-f="error"]')).to_contain_text("lost contact")
        expect(silent.locator('[data-f="stale-box"]')).to_have_count(0)
    finally:
        stop_server(server)


def test_hostile_job_name_is_text(page: Page, server: Server, api: Api) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    first = api.running(hostile, step=1, total=10)
    page.goto(server.url)
    expect(page.locator(f'article[data-job-id="{first}"] [data-f="name"]')).to_have_text(hostile)
    # The same name arriving live, through the template clone rather than the server's render.
    later = api.create(hostile + "<script>alert(2)</script>")
    live = page.locator(f'article[data-job-id="{later["id"]}"] [data-f="name"]')
    expect(live).to_have_text(hostile + "<script>alert(2)</script>")
    page.get_by_role("button", name="Cancel " + hostile, exact=True).click()
    expect(page.get_by_role("dialog")).to_contain_text(hostile)
    page.keyboard.press("Escape")
    assert page.locator("main img, dialog img").count() == 0
    assert page.locator("main script").count() == 0
    assert dialogs == []


def test_phone_layout_stacks_metrics(page: Page, server: Server, api: Api, artifacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    job_id = api.running("phone-view-run", step=1234, total=5000, loss=0.0123456)
    api.create("next-in-line", totalSteps=100)
    page.goto(server.url)
    c = page.locator(f'article[data-job-id="{job_id}"]')
    expect(c.locator('[data-f="steps"]')).to_have_text("1,234 / 5,000")
    boxes = [m.bounding_box() for m in c.locator(".metric").all()[:3]]
    assert all(b is not None for b in boxes)
    xs = {round(b["x"]) for b in boxes if b}
    ys = [b["y"] for b in boxes if b]
    assert len(xs) == 1 and ys == sorted(ys) and len(set(ys)) == 3, boxes  # one column
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    page.screenshot(path=artifacts / "card-phone.png", full_page=True)


def test_desktop_metrics_in_three_columns(page: Page, server: Server, api: Api) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    job_id = api.running("wide-view-run", step=10, total=100)
    page.goto(server.url)
    metrics = page.locator(f'article[data-job-id="{job_id}"] .metric').all()[:3]
    ys = {round(b["y"]) for m in metrics if (b := m.bounding_box())}
    assert len(ys) == 1  # one row of three


def test_page_runs_under_its_csp(page: Page, server: Server, api: Api) -> None:
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    api.running("csp-run", step=1, total=2)
    response = page.goto(server.url)
    assert response is not None
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    expect(page.locator("#conn")).to_have_text("Live")
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("[style]").count() == 0
    assert violations == []


@pytest.mark.parametrize(
    ("label", "width", "scheme"),
    [("desktop", 1280, "light"), ("desktop-dark", 1280, "dark"), ("phone", 390, "light")],
)
def test_gallery_screenshots(
    page: Page, idle_server: Server, artifacts: Path, label: str, width: int, scheme: str
) -> None:
    """A realistic board to look at: save, then read the PNGs under tests/e2e/artifacts/."""
    api = idle_server.api
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.set_viewport_size({"width": width, "height": 900})
    # Started first and advanced last, so they have a real rate and ETA.
    llama = api.running("llama-3-8b-lora-r16", step=0, total=10000)
    vit = api.running("vit-b16-imagenet", step=0, total=90000)
    diverged = api.running("gpt2-medium-lr-sweep-3e-3", step=0, total=5000)
    api.create("whisper-small-finetune", command={"argv": ["python", "train.py", "--epochs", "3"]})
    api.create("sdxl-dreambooth", totalSteps=1500)
    done = api.running("bert-base-squad", step=8000, total=8000)
    api.report(done, status="completed", loss=0.8123)
    failed = api.running("t5-large-summarise", step=2100, total=20000, loss=1.92)
    api.report(failed, status="failed", error="torch.OutOfMemoryError: CUDA out of memory.")
    stopped = api.running("resnet50-cifar100", step=300, total=3000, loss=2.1)
    api.cancel(stopped)
    api.report(stopped, status="cancelled")
    api.report(llama, points=[{"step": 3700, "loss": 0.4213, "metrics": {"lr": 0.0003}}])
    api.report(vit, points=[{"step": 41250, "loss": 1.2345, "metrics": {"acc": 0.7312}}])
    api.report(diverged, points=[{"step": 1234, "loss": "NaN", "metrics": {"lr": 0.003}}])
    page.goto(idle_server.url)
    expect(page.locator("#conn")).to_have_text("Live")
    expect(page.locator("#active-list > article")).to_have_count(5)
    expect(page.locator("#recent-list > tr")).to_have_count(3)
    page.screenshot(path=artifacts / f"board-{label}.png", full_page=True)
