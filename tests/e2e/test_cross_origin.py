"""A page on another origin follows a job with EventSource when that origin is allowed (real Chromium)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.e2e.conftest import Live
from tests.e2e.test_browser import FLAGS
from tests.servers import free_port, serving

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]

PAGE = """<!doctype html><meta charset="utf-8"><title>another origin</title>
<script>
  window.seen = [];
  function follow(url) {
    const source = new EventSource(url);
    source.onmessage = (m) => {
      const e = JSON.parse(m.data);
      window.seen.push(e.status);
      if (e.status === "Completed") window.result = e.url;
      if (["Completed", "Error", "Canceled"].includes(e.status)) source.close();
    };
    source.onerror = () => window.seen.push("error");
  }
</script>"""


@pytest.fixture
def page_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The second origin's port, allowed before the gateway starts."""
    port = free_port()
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", f'["http://127.0.0.1:{port}"]')
    return port


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def test_a_page_on_an_allowed_origin_follows_a_job(
    page_port: int, live: Live, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    key = await live.new_key(100)
    job = (
        await live.client.post(
            "/api/generations",
            json={"model": "suno", "prompt": "a jingle"},
            headers={"Authorization": f"Bearer {key}"},
        )
    ).json()
    other = Starlette(routes=[Route("/", page)])
    async with serving(other, lifespan="off", port=page_port) as page_url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=FLAGS)
        try:
            tab = await browser.new_page(bypass_csp=True)
            await tab.goto(page_url + "/")
            await tab.evaluate("url => follow(url)", job["events_url"])
            await tab.wait_for_function("window.seen.includes('Completed')", timeout=60_000)
            seen = await tab.evaluate("window.seen")
            assert seen[0] == "Processing started" and "error" not in seen, seen
            # The signed download is readable from that page too.
            size = await tab.evaluate(
                "fetch(window.result).then(r => r.arrayBuffer()).then(b => b.byteLength)"
            )
            assert size > 0
        finally:
            await browser.close()
    async with httpx.AsyncClient(timeout=30) as client:
        allowed = await client.get(job["events_url"], headers={"Origin": f"http://127.0.0.1:{page_port}"})
        assert allowed.headers["access-control-allow-origin"] == f"http://127.0.0.1:{page_port}"
        elsewhere = await client.get(job["events_url"], headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in elsewhere.headers
        keyed = await client.get(  # what takes an API key never answers cross-origin
            job["status_url"],
            headers={"Origin": f"http://127.0.0.1:{page_port}", "Authorization": f"Bearer {key}"},
        )
        assert keyed.status_code == 200 and "access-control-allow-origin" not in keyed.headers
