"""The operator console in a real Chromium (Debian's, driven by Playwright) against a real demo server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import ADMIN
from tests.e2e.conftest import Live
from tests.e2e.test_browser import FLAGS

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]


async def wait_finished(live: Live, key: str, job_id: str) -> str:
    with anyio.fail_after(60):
        while True:
            job = (
                await live.client.get(
                    f"/api/generations/{job_id}", headers={"Authorization": f"Bearer {key}"}
                )
            ).json()
            if job["status"] in ("completed", "failed", "canceled"):
                return str(job["status"])
            await anyio.sleep(0.2)


async def create(live: Live, key: str, model: str, prompt: str) -> dict[str, Any]:
    response = await live.client.post(
        "/api/generations",
        json={"model": model, "prompt": prompt},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def key_row_shows(page: Any, cells: dict[int, str], wait_ms: float = 30_000) -> None:
    """Wait until the keys table's row of the test's key shows `cells` (column → text)."""
    tests = "".join(
        f" && r.children[{column}].textContent === {json.dumps(text)}" for column, text in cells.items()
    )
    await page.wait_for_function(
        f"[...document.querySelectorAll('#keys tr')].some(r => r.textContent.includes('console e2e'){tests})",
        timeout=wait_ms,
    )


async def test_console_creates_a_key_shows_its_job_live_and_then_in_the_charts(
    live: Live, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(bypass_csp=True, viewport={"width": 1280, "height": 900})
            await page.goto(live.url + "/admin")
            await page.fill("#admin-token", ADMIN)
            await page.click("#sign-in")
            await page.wait_for_selector("#console:not([hidden])")
            assert ADMIN not in page.url
            assert await page.evaluate("sessionStorage.getItem('gateway.adminToken')") == ADMIN
            # provider health: the demo's providers all answer, through the simulator
            await page.wait_for_selector("#providers tr[data-provider='luma'] .state-closed")

            # a key, created in the console and shown once
            await page.fill("#create-name", "console e2e")
            await page.fill("#create-tokens", "200")
            await page.fill("#create-jobs", "4")
            await page.click("#create-key")
            await page.wait_for_selector("#new-key-box:not([hidden])")
            key = (await page.text_content("#new-key") or "").strip()
            assert key.startswith("gw_")
            row = page.locator("#keys tr", has_text="console e2e")
            await row.wait_for()
            assert "200" in await row.inner_text() and key not in await row.inner_text()
            await page.click("#dismiss-key")
            assert (await page.text_content("#new-key")) == ""

            # a credit through the console
            await row.locator("button.manage").click()
            await page.fill("#credit-tokens", "50")
            await page.fill("#credit-note", "e2e top-up")
            await page.click("#credit-key")
            await key_row_shows(page, {3: "250"})

            # limits and an allow-list through the console, then back to every model
            await page.fill("#edit-rate", "30")
            await page.uncheck("#edit-models input[value='*']")
            await page.check("#edit-models input[value='suno']")
            await page.check("#edit-models input[value='luma']")
            await page.click("#save-key")
            await key_row_shows(page, {4: "luma, suno", 5: "30"})
            record = next(
                k
                for k in (
                    await live.client.get("/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"})
                ).json()["items"]
                if k["name"] == "console e2e"
            )
            assert record["models"] == ["luma", "suno"] and record["rate_limit_per_minute"] == 30
            await page.check("#edit-models input[value='*']")
            await page.click("#save-key")
            await key_row_shows(page, {4: "all"})

            # jobs through the API with that key: one seen live, one that fails (a refund), one quick
            headers = {"Authorization": f"Bearer {key}"}
            slow = await create(live, key, "luma", "a slow pan sim:slow")
            await page.wait_for_selector(f"#running tr[data-job-id='{slow['id']}']", timeout=10_000)
            live_row = await page.inner_text(f"#running tr[data-job-id='{slow['id']}']")
            assert "console e2e" in live_row and "luma" in live_row
            failing = await create(live, key, "pika", "a fox sim:fail")
            quick = await create(live, key, "suno", "a song")
            statuses = [await wait_finished(live, key, job["id"]) for job in (slow, failing, quick)]
            assert statuses == ["completed", "failed", "completed"]
            await page.wait_for_selector(f"#running tr[data-job-id='{slow['id']}']", state="detached")

            # then in the charts: 30 (luma) + 10 (suno) net, the pika job's 10 debited and refunded
            # (the page refreshes its charts every 15 s by itself too: one of those, made before the
            # last job finished, may already show the net; the refresh asked for here shows the rest)
            await page.click("#refresh-usage")
            await page.wait_for_function(
                "document.querySelector('#total-net').textContent === '40'"
                " && document.querySelector('#total-jobs').textContent === '2 / 1 / 0'"
            )
            assert await page.text_content("#total-debited") == "50"
            assert await page.text_content("#total-refunded") == "10"
            assert await page.text_content("#total-refund-rate") == "20.0 %"
            assert await page.text_content("#total-jobs") == "2 / 1 / 0"
            legend = await page.inner_text("#chart-tokens .u-legend")
            assert "luma" in legend and "pika" in legend and "suno" in legend
            assert await page.locator("#chart-tokens canvas").count() == 1
            assert "failed" in await page.inner_text("#chart-jobs .u-legend")

            # one more running while the screenshot is taken, then cancelled (and refunded)
            another = await create(live, key, "luma", "a long shot sim:slow")
            await page.wait_for_selector(f"#running tr[data-job-id='{another['id']}']", timeout=10_000)
            await page.wait_for_function(
                "document.querySelector('#running progress').value > 0", timeout=20_000
            )
            screenshot = tmp_path / "console.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot: {screenshot}")
            assert screenshot.stat().st_size > 10_000
            if target := os.environ.get("SAVE_CONSOLE_SCREENSHOT"):  # how docs/console.png is made
                shutil.copyfile(screenshot, target)

            cancelled = await live.client.post(f"/api/generations/{another['id']}/cancel", headers=headers)
            assert cancelled.status_code == 200
            await page.wait_for_selector(f"#running tr[data-job-id='{another['id']}']", state="detached")
            # the balance the console shows is the key's: 250 - 50 + 10 (- 30 + 30)
            await key_row_shows(page, {3: "210"}, wait_ms=20_000)
            # revoked in two clicks: the key answers 401 from then on
            await row.locator("button.manage").click()
            await page.click("#revoke-key")
            assert await page.text_content("#revoke-key") == "Really revoke?"
            await page.click("#revoke-key")
            await row.locator(".state-revoked").wait_for()
            assert (await live.client.get("/api/balance", headers=headers)).status_code == 401
        finally:
            await browser.close()


async def test_console_under_its_csp_loads_without_violations(live: Live, chromium_path: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=FLAGS)
        try:
            page = await browser.new_page()  # the CSP enforced, as a browser would
            messages: list[str] = []
            page.on("console", lambda message: messages.append(message.text))
            page.on("pageerror", lambda error: messages.append(str(error)))
            response = await page.goto(live.url + "/admin")
            assert (
                response is not None
                and "frame-ancestors 'none'" in response.headers["content-security-policy"]
            )
            await page.fill("#admin-token", "not the token")
            await page.click("#sign-in")
            await page.wait_for_selector("#login:not([hidden]) .hint >> text=Not signed in")
            await page.fill("#admin-token", ADMIN)
            await page.click("#sign-in")
            await page.wait_for_selector("#chart-jobs canvas")
            await page.wait_for_selector("#providers tr[data-provider='suno']")
            assert not [m for m in messages if "Content Security Policy" in m or "Error" in m], messages
        finally:
            await browser.close()
