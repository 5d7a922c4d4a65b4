"""Circuit breaker and fallbacks, the provider deadline, and the per-provider in-flight cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from tests.conftest import admin_headers, bearer, make_settings
from tests.fakes import release
from tests.gateway.test_generate import assert_error
from tests.sse import parse

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def client_for(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, str, Any]]:
    app = create_app(make_settings(tmp_path, **settings))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            created = await client.post(
                "/admin/keys",
                json={"name": "k", "tokens": 1000, "max_concurrent_jobs": 50},
                headers=admin_headers(),
            )
            yield client, created.json()["key"], app


async def generate(
    client: httpx.AsyncClient, key: str, prompt: str, model: str = "echo"
) -> list[dict[str, Any]]:
    response = await client.post(
        "/api/generate", json={"model": model, "prompt": prompt}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    return [event for _, event in parse(response.text)]


async def test_circuit_opens_then_refuses_with_503_and_closes_after_cooldown(tmp_path: Path) -> None:
    async with client_for(tmp_path, scripted={"circuit_cooldown_seconds": 0.5}) as (client, key, _app):
        for _ in range(3):
            events = await generate(client, key, "unavailable")
            assert events[-1]["code"] == "upstream_unavailable" and events[-1]["refunded"]
        ready = (await client.get("/readyz")).json()
        assert ready["providers"]["scripted"] == "open"
        refused = await client.post(
            "/api/generate", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
        )
        body = assert_error(refused, 503, "provider_unavailable")
        assert int(refused.headers["retry-after"]) >= 1 and body["provider"] == "scripted"
        models = {m["id"]: m for m in (await client.get("/api/models", headers=bearer(key))).json()["models"]}
        assert models["echo"]["available"] is False
        assert (await client.get("/api/balance", headers=bearer(key))).json()["token_balance"] == 1000
        await anyio.sleep(0.6)
        assert (await client.get("/readyz")).json()["providers"]["scripted"] == "half_open"
        events = await generate(client, key, "works again")
        assert events[-1]["status"] == "Completed"
        assert (await client.get("/readyz")).json()["providers"]["scripted"] == "closed"


async def test_fallback_serves_while_the_circuit_is_open(tmp_path: Path) -> None:
    async with client_for(tmp_path, echo={"fallbacks": ["echo-backup"]}) as (client, key, _app):
        for _ in range(3):
            await generate(client, key, "unavailable")
        events = await generate(client, key, "x")
        assert events[0]["served_by"] == "echo-backup"
        assert events[0]["cost"] == 10  # the requested model's price
        assert events[-1]["status"] == "Completed"
        job = (await client.get(f"/api/generations/{events[0]['job_id']}", headers=bearer(key))).json()
        assert job["model"] == "echo" and job["served_by"] == "echo-backup"


async def test_deadline_cancels_upstream_and_refunds(tmp_path: Path) -> None:
    async with client_for(tmp_path, scripted={"deadline_seconds": 0.3}) as (client, key, app):
        events = await generate(client, key, "hold forever")
        last = events[-1]
        assert last["status"] == "Error" and last["code"] == "timeout" and last["refunded"] is True
        assert "the upstream task was cancelled" in last["message"]
        adapter = app.state.services.registry.upstream("scripted").adapter
        assert adapter.cancelled == [f"up-{last['job_id']}"]
        assert (await client.get("/api/balance", headers=bearer(key))).json()["token_balance"] == 1000


async def test_jobs_over_the_in_flight_cap_wait_in_the_gateways_queue(tmp_path: Path) -> None:
    async with client_for(tmp_path, scripted={"max_in_flight": 1}) as (client, key, _app):
        first = (
            await client.post(
                "/api/generations", json={"model": "echo", "prompt": "hold"}, headers=bearer(key)
            )
        ).json()
        second = (
            await client.post("/api/generations", json={"model": "echo", "prompt": "x"}, headers=bearer(key))
        ).json()
        await anyio.sleep(0.2)  # the second job is waiting for the first's slot
        assert (await client.get(f"/api/generations/{second['id']}", headers=bearer(key))).json()[
            "status"
        ] == "queued"
        release()
        with anyio.fail_after(5):
            while (await client.get(f"/api/generations/{second['id']}", headers=bearer(key))).json()[
                "status"
            ] != "completed":
                await anyio.sleep(0.01)
        response = await client.get(f"/api/generations/{second['id']}/events", headers=bearer(key))
        statuses = [(e["status"], e.get("position")) for _, e in parse(response.text)]
        assert statuses[:2] == [("Processing started", None), ("Queued", 1)]
        assert statuses[-1] == ("Completed", None)
        assert (await client.get(f"/api/generations/{first['id']}", headers=bearer(key))).json()[
            "status"
        ] == "completed"
