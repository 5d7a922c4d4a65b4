"""Webhooks: one signed delivery of the terminal job object to a loopback receiver; URL checks."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.contract.errors import InvalidRequest
from gateway.results.addresses import IPAddress
from gateway.results.webhooks import check_callback_url, verify_signature
from tests.conftest import admin_headers, bearer, make_settings
from tests.servers import serving

pytestmark = pytest.mark.anyio


async def test_loopback_receiver_gets_one_signed_delivery(tmp_path: Path) -> None:
    received: list[tuple[bytes, str]] = []
    attempts = 0
    arrived = anyio.Event()

    async def hook(request: Request) -> Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return Response(status_code=503)  # the first try fails: the gateway retries
        received.append((await request.body(), request.headers["x-gateway-signature"]))
        arrived.set()
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    settings = make_settings(tmp_path, allow_private_callbacks=True, webhook_backoff_seconds=0.01)
    app = create_app(settings)
    async with serving(receiver, lifespan="off") as receiver_url, app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            key = (
                await client.post("/admin/keys", json={"name": "k", "tokens": 50}, headers=admin_headers())
            ).json()["key"]
            job = (
                await client.post(
                    "/api/generations",
                    json={"model": "echo", "prompt": "x", "callback_url": f"{receiver_url}/hook"},
                    headers=bearer(key),
                )
            ).json()
            with anyio.fail_after(10):
                await arrived.wait()
            await anyio.sleep(0.2)
    assert len(received) == 1 and attempts == 2
    body, signature = received[0]
    secret = settings.secret("webhook_secret")
    assert verify_signature(secret, body, signature)
    assert not verify_signature(secret, body + b" ", signature)
    import json

    delivered: dict[str, Any] = json.loads(body)
    assert delivered["id"] == job["id"] and delivered["status"] == "completed" and delivered["url"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.example/h",
        "http://localhost/h",
        "http://127.0.0.1:9/h",
        "http://[::1]/h",
        "http://192.168.1.4/h",
        "http://169.254.169.254/latest",
        "http://printer.local/h",
        "notaurl",
    ],
)
async def test_callback_url_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        await check_callback_url(url, allow_private=False)


async def test_callback_url_allowed() -> None:
    async def public(host: str) -> list[IPAddress]:
        return [ip_address("93.184.216.34")]

    await check_callback_url("https://hooks.example.com/x", allow_private=False, resolve=public)
    await check_callback_url("http://127.0.0.1:9/h", allow_private=True)


def test_receivers_import_verify_signature_where_the_readme_says() -> None:
    from gateway import webhooks

    assert webhooks.verify_signature is verify_signature
