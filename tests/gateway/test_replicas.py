"""Two replicas in one process on one PostgreSQL (with and without Redis), each a whole app over ASGI:
streams, cancels, provider caps, webhooks and hand-over work across them."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
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
from tests import fakes
from tests.conftest import Harness, admin_headers, bearer, make_settings
from tests.servers import serving

pytestmark = pytest.mark.anyio


async def start_replica(stack: AsyncExitStack, tmp_path: Path, name: str, **settings: Any) -> Harness:
    config = make_settings(
        tmp_path / name,
        instance_id=name,
        url_signing_key="shared-url-key",
        webhook_secret="shared-webhook-secret",
        stream_token_secret="shared-stream-secret",
        **settings,
    )
    app = create_app(config)
    await stack.enter_async_context(app.router.lifespan_context(app))
    transport = httpx.ASGITransport(app=app)
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url="http://testserver")
    )
    return Harness(app, client, config)


@pytest.fixture(params=["postgres", "postgres+redis"])
async def engines(request: pytest.FixtureRequest, postgres_url: str) -> AsyncIterator[dict[str, Any]]:
    values: dict[str, Any] = {"database_url": postgres_url, "lease_seconds": 3}
    if request.param.endswith("redis"):
        values["redis_url"] = request.getfixturevalue("redis_url")
        values["redis_prefix"] = f"gw_test_{secrets.token_hex(4)}:"
    yield values


async def events_of(
    replica: Harness, key: str, job_id: str, after: int = 0
) -> list[tuple[int, dict[str, Any]]]:
    import json

    found: list[tuple[int, dict[str, Any]]] = []
    headers = {**bearer(key), "Last-Event-ID": str(after)}
    async with replica.client.stream("GET", f"/api/generations/{job_id}/events", headers=headers) as response:
        event_id = 0
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                found.append((event_id, json.loads(line[6:])))
    return found


async def create(
    replica: Harness, key: str, prompt: str = "hold", processing_on: Harness | None = None
) -> str:
    """A job on `replica` (held mid-flight by "hold"); with `processing_on`, once that replica sees it run."""
    created = await replica.client.post(
        "/api/generations", json={"model": "echo", "prompt": prompt}, headers=bearer(key)
    )
    job_id: str = created.json()["id"]
    if processing_on is not None:
        await until(lambda: job_state(processing_on, key, job_id, "processing"))
    return job_id


async def job_of(replica: Harness, key: str, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await replica.client.get(f"/api/generations/{job_id}", headers=bearer(key))
    ).json()
    return body


async def until(check: Any, within: float = 10) -> Any:
    with anyio.fail_after(within):
        while not (value := await check()):
            await anyio.sleep(0.05)
        return value


async def test_a_stream_on_b_follows_a_job_driven_on_a(tmp_path: Path, engines: dict[str, Any]) -> None:
    async with AsyncExitStack() as stack:
        a = await start_replica(stack, tmp_path, "a", **engines)
        b = await start_replica(stack, tmp_path, "b", **engines)
        key, _ = await a.new_key(100)
        job_id = await create(a, key)
        async with anyio.create_task_group() as tg:
            seen: list[list[tuple[int, dict[str, Any]]]] = []

            async def follow() -> None:
                seen.append(await events_of(b, key, job_id))

            tg.start_soon(follow)
            await until(lambda: job_state(a, key, job_id, "processing"))
            fakes.release()
        events = seen[0]
        assert [i for i, _ in events] == list(range(1, len(events) + 1))
        assert events[-1][1]["status"] == "Completed"
        assert events == await events_of(a, key, job_id)  # the same ids and events on either replica


async def job_state(replica: Harness, key: str, job_id: str, status: str) -> bool:
    return (await job_of(replica, key, job_id))["status"] == status


async def test_a_cancel_on_b_stops_the_driver_on_a_within_two_seconds(
    tmp_path: Path, engines: dict[str, Any]
) -> None:
    async with AsyncExitStack() as stack:
        a = await start_replica(stack, tmp_path, "a", **engines)
        b = await start_replica(stack, tmp_path, "b", **engines)
        key, _ = await a.new_key(100)
        job_id = await create(a, key, processing_on=b)
        assert a.app.state.services.runner.running == 1
        cancelled = await b.client.post(f"/api/generations/{job_id}/cancel", headers=bearer(key))
        assert cancelled.status_code == 200 and cancelled.json()["refunded"] is True
        stopped_at = time.monotonic()
        await until(lambda: no_driver(a), within=2)
        assert time.monotonic() - stopped_at < 2
        assert b.app.state.services.registry.upstream("scripted").adapter.cancelled == [f"up-{job_id}"]
        assert a.app.state.services.registry.upstream("scripted").adapter.cancelled == []  # once, by b
        balance = (await a.client.get("/api/balance", headers=bearer(key))).json()["token_balance"]
        assert balance == 100
        events = await events_of(a, key, job_id)
        assert [e["status"] for _, e in events][-1] == "Canceled"


async def no_driver(replica: Harness) -> bool:
    return bool(replica.app.state.services.runner.running == 0)


async def test_max_in_flight_is_one_cap_across_replicas(tmp_path: Path, postgres_url: str) -> None:
    shared = {"database_url": postgres_url, "scripted": {"max_in_flight": 1}}
    async with AsyncExitStack() as stack:
        a = await start_replica(stack, tmp_path, "a", **shared)
        b = await start_replica(stack, tmp_path, "b", **shared)
        key, _ = await a.new_key(100)
        await create(a, key, processing_on=a)
        second_id = await create(b, key, prompt="x")
        queued = await until(lambda: queued_event(b, key, second_id))
        assert queued["position"] == 1  # waiting in the gateway's queue behind a's job
        assert (await job_of(b, key, second_id))["status"] == "queued"
        fakes.release()
        await until(lambda: job_state(b, key, second_id, "completed"))


async def queued_event(replica: Harness, key: str, job_id: str) -> dict[str, Any] | None:
    import json

    rows = await replica.app.state.services.db.fetchall(
        "SELECT data FROM job_events WHERE job_id = ? ORDER BY seq", (job_id,)
    )
    for row in rows:
        data: dict[str, Any] = json.loads(row[0])
        if data["status"] == "Queued" and "position" in data:
            return data
    return None


async def test_a_graceful_stop_hands_jobs_over_at_once(tmp_path: Path, postgres_url: str) -> None:
    long_lease = {"database_url": postgres_url, "lease_seconds": 60}
    async with AsyncExitStack() as outer:
        b = await start_replica(outer, tmp_path, "b", **long_lease)
        async with AsyncExitStack() as inner:
            a = await start_replica(inner, tmp_path, "a", **long_lease)
            key, _ = await a.new_key(100)
            job_id = await create(a, key, processing_on=a)
        stopped = time.monotonic()  # a's lifespan ended, as on SIGTERM: its lease was let go
        await until(lambda: has_driver(b), within=5)
        assert time.monotonic() - stopped < 5  # not the 60 s lease
        fakes.release()
        job = await until(lambda: finished(b, key, job_id))
        assert job["status"] == "completed"
        events = await events_of(b, key, job_id)
        assert [i for i, _ in events] == list(range(1, len(events) + 1))


async def has_driver(replica: Harness) -> bool:
    return bool(replica.app.state.services.runner.running == 1)


async def finished(replica: Harness, key: str, job_id: str) -> dict[str, Any] | None:
    job = await job_of(replica, key, job_id)
    return job if job["status"] in ("completed", "failed", "canceled") else None


async def test_a_webhook_is_delivered_once_whichever_replicas_run(tmp_path: Path, postgres_url: str) -> None:
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    shared = {"database_url": postgres_url, "allow_private_callbacks": True}
    async with serving(receiver, lifespan="off") as url, AsyncExitStack() as stack:
        a = await start_replica(stack, tmp_path, "a", **shared)
        key, _ = await a.new_key(100)
        created = await a.client.post(
            "/api/generations",
            json={"model": "echo", "prompt": "x", "callback_url": url + "/hook"},
            headers=bearer(key),
        )
        await until(lambda: finished(a, key, created.json()["id"]))

        async def delivered() -> bool:
            return bool(received)

        await until(delivered)
        # Two more replicas start and look for undelivered webhooks: there are none to send again.
        await start_replica(stack, tmp_path, "b", **shared)
        await start_replica(stack, tmp_path, "c", **shared)
        await anyio.sleep(0.5)
        assert len(received) == 1


async def test_a_key_changed_on_one_replica_is_seen_by_the_other(
    tmp_path: Path, engines: dict[str, Any]
) -> None:
    """At once with Redis (the change is announced); within the key cache's second without it."""
    async with AsyncExitStack() as stack:
        a = await start_replica(stack, tmp_path, "a", **engines)
        b = await start_replica(stack, tmp_path, "b", **engines)
        key, record = await a.new_key(10)
        assert (await a.client.get("/api/balance", headers=bearer(key))).status_code == 200  # cached on a
        credited = await b.client.post(
            f"/admin/keys/{record['id']}/credit", json={"tokens": 5}, headers=admin_headers()
        )
        assert credited.status_code == 200
        assert (await a.client.get("/api/balance", headers=bearer(key))).json()["token_balance"] == 15
        assert (
            await b.client.delete(f"/admin/keys/{record['id']}", headers=admin_headers())
        ).status_code == 200
        revoked_at = time.monotonic()

        async def refused() -> bool:
            return (await a.client.get("/api/balance", headers=bearer(key))).status_code == 401

        await until(refused, within=1.5)
        if "redis_url" in engines:
            assert time.monotonic() - revoked_at < 0.5
