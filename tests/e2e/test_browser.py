"""The playground in a real Chromium (Debian's, driven by Playwright) against a real demo server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Live

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


async def test_playground_generates_music_and_video(live: Live, chromium_path: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    key = await live.new_key(1000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(bypass_csp=True)  # Playwright evaluates its waits as strings
            await page.goto(live.url + "/")
            await page.fill("#api-key", key)
            await page.click("#save-key")
            await page.wait_for_function("document.querySelector('#balance').textContent === '1000'")
            expected_balance = 1000
            for model, prompt in (("suno", "an upbeat pop song"), ("pika", "a fox in the snow")):
                await page.select_option("#model", model)
                await page.fill("#prompt", prompt)
                await page.click("#generate")
                await page.wait_for_function("document.querySelector('#bar').value === 100", timeout=60_000)
                await page.wait_for_selector("#media", timeout=10_000)
                duration = await page.wait_for_function(
                    "(() => { const m = document.querySelector('#media');"
                    " return m && m.readyState >= 1 && m.duration > 0 ? m.duration : false; })()",
                    timeout=20_000,
                )
                assert await duration.json_value() > 0
                assert await page.text_content("#bar-text") == "100 %"
                expected_balance -= 10
                await page.wait_for_function(
                    f"document.querySelector('#balance').textContent === '{expected_balance}'"
                )
                assert "sessionStorage" not in page.url and key not in page.url
            screenshot = tmp_path / "playground.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot: {screenshot}")
            assert screenshot.stat().st_size > 1000
        finally:
            await browser.close()
    balance = (await live.client.get("/api/balance", headers={"Authorization": f"Bearer {key}"})).json()
    assert balance["token_balance"] == 980


async def test_reload_mid_job_resumes_progress(live: Live, chromium_path: str) -> None:
    from playwright.async_api import async_playwright

    key = await live.new_key(100)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(bypass_csp=True)  # Playwright evaluates its waits as strings
            await page.goto(live.url + "/")
            await page.fill("#api-key", key)
            await page.click("#save-key")
            await page.wait_for_function("document.querySelector('#model').options.length > 0")
            await page.select_option("#model", "luma")
            await page.fill("#prompt", "a long shot sim:slow")
            await page.click("#generate")
            await page.wait_for_function("document.querySelector('#job-status').textContent !== '–'")
            await page.reload()
            # The job id survived in sessionStorage: the page follows the same job again.
            await page.wait_for_function(
                "['Processing started','Queued','Processing'].includes(document.querySelector('#job-status').textContent)",
                timeout=10_000,
            )
            assert await page.evaluate("sessionStorage.getItem('gateway.currentJob')")
        finally:
            await browser.close()


async def test_the_playground_shows_the_live_preview_under_the_bar(live: Live, chromium_path: str) -> None:
    from playwright.async_api import async_playwright

    key = await live.new_key(100)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(bypass_csp=True)  # Playwright evaluates its waits as strings
            await page.goto(live.url + "/")
            await page.fill("#api-key", key)
            await page.click("#save-key")
            await page.wait_for_function("document.querySelector('#model').options.length > 0")
            await page.select_option("#model", "local")
            await page.fill("#prompt", "a lighthouse sim:slow")
            # Remember each preview frame the page loads, however soon the result replaces it.
            await page.evaluate(
                "window.previews = []; document.addEventListener('load', (e) => {"
                " if (e.target.id === 'preview') window.previews.push([e.target.src, e.target.naturalWidth]);"
                " }, true)"
            )
            await page.click("#generate")
            await page.wait_for_selector("#media", timeout=60_000)
            await page.wait_for_function("document.querySelector('#bar').value === 100")
            frames = await page.evaluate("window.previews")
            assert frames and all("/preview.png?" in src and width > 0 for src, width in frames)
            assert await page.query_selector("#preview") is None  # the result took its place
        finally:
            await browser.close()
