"""The console page at /admin: served with its CSP while the admin API is on, a JSON 404 while it is off."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import Harness, make_settings
from tests.gateway.test_generate import assert_error

pytestmark = pytest.mark.anyio


async def test_console_is_served_with_a_strict_csp_and_its_assets(harness: Harness) -> None:
    page = await harness.client.get("/admin")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert page.headers["cache-control"] == "no-cache"
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline for the CSP to refuse
    for asset in (
        "/static/console.js",
        "/static/console.css",
        "/static/vendor/uplot-1.6.32/uPlot.iife.min.js",
    ):
        assert asset in page.text
        response = await harness.client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
    script = (await harness.client.get("/static/console.js")).text
    assert "sessionStorage" in script and "localStorage" not in script and "?token" not in script


async def test_console_is_404_when_the_admin_api_is_off(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, admin_token=None))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert_error(await client.get("/admin"), 404, "not_found")
