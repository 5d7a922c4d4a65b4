"""The gateway's queue: fair across keys, with a place and an ETA, and a per-key cap on waiting jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.jobs.services import Services
from gateway.store import events as event_log
from tests import fakes
from tests.conftest import admin_headers, bearer
from tests.gateway.test_accounts import gateway, job, submit, wait_for

pytestmark = pytest.mark.anyio


def services(client: httpx.AsyncClient) -> Services:
    return client._transport.app.state.services  # type: ignore[attr-defined,no-any-return]


async def queued_events(client: httpx.AsyncClient, key: str, job_id: str) -> list[dict[str, Any]]:
    """The job's Queued events so far (the events stream would stay open until the job ends)."""
    return [
        e.data for e in await event_log.after(services(client).db, job_id, 0) if e.data["status"] == "Queued"
    ]


async def test_one_keys_burst_holds_back_another_keys_job_for_at_most_one_slot(
    tmp_path: Path, database_url: str | None
) -> None:
    async with gateway(tmp_path, database_url, max_in_flight=1) as (client, x):
        made = await client.post("/admin/keys", json={"name": "y", "tokens": 100}, headers=admin_headers())
        y = made.json()["key"]
        burst = [await submit(client, x, f"gate:x{n}") for n in range(6)]
        await wait_for(client, x, burst[0], "processing")
        lone = await submit(client, y, "gate:y")
        fakes.release("x0")
        await wait_for(client, x, burst[1], "processing")  # the burst's next job was ahead of y's
        assert (await job(client, y, lone))["status"] == "queued"
        fakes.release("x1")
        await wait_for(client, y, lone, "processing")  # then y's, before the rest of the burst
        assert [(await job(client, x, j))["status"] for j in burst[2:]] == ["queued"] * 4
        for name in ("y", "x2", "x3", "x4", "x5"):
            fakes.release(name)
        for job_id in burst:
            await wait_for(client, x, job_id, "completed")


async def test_queued_events_carry_a_place_and_a_falling_eta(tmp_path: Path) -> None:
    async with gateway(tmp_path, max_in_flight=1, extra={"typical_seconds": 40}) as (client, key):
        jobs = [await submit(client, key, f"gate:j{n}") for n in range(5)]
        last = jobs[-1]
        await wait_for(client, key, jobs[0], "processing")
        with anyio.fail_after(10):
            while not await queued_events(client, key, last):
                await anyio.sleep(0.05)
        first = (await queued_events(client, key, last))[0]
        assert first["position"] == 4 and first["eta_seconds"] == 4 * 40  # no history yet: typical_seconds
        for n in range(3):
            fakes.release(f"j{n}")
            await wait_for(client, key, jobs[n + 1], "processing")
        with anyio.fail_after(10):  # the place is told again within the report interval
            while (events := await queued_events(client, key, last))[-1]["position"] != 1:
                await anyio.sleep(0.1)
        positions = [e["position"] for e in events]
        etas = [e["eta_seconds"] for e in events]
        assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)
        assert etas == sorted(etas, reverse=True) and etas[-1] < etas[0]
        fakes.release("j3")
        fakes.release("j4")
        await wait_for(client, key, last, "completed")


async def test_a_key_may_have_only_so_many_jobs_waiting(tmp_path: Path) -> None:
    async with gateway(tmp_path, max_in_flight=1) as (client, key):
        services(client).settings.max_queued_jobs_per_key = 2
        running = await submit(client, key, "gate:first")
        await wait_for(client, key, running, "processing")
        waiting = [await submit(client, key, "x") for _ in range(2)]
        refused = await client.post(
            "/api/generations", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
        )
        assert refused.status_code == 429 and refused.json()["code"] == "too_many_jobs"
        assert "waiting" in refused.json()["message"] and refused.headers["retry-after"]
        assert (await client.get("/api/balance", headers=bearer(key))).json()["token_balance"] == 970
        fakes.release("first")
        for job_id in waiting:
            await wait_for(client, key, job_id, "completed")


async def test_a_burst_on_a_provider_with_free_slots_is_not_refused_as_waiting(tmp_path: Path) -> None:
    """A new job counts as waiting until its driver takes a slot; a burst that the provider's free
    slots will take is not refused for the per-key waiting cap."""
    async with gateway(tmp_path, max_in_flight=50) as (client, key):
        services(client).settings.max_queued_jobs_per_key = 2
        async with anyio.create_task_group() as tg:  # all created before any driver runs
            for n in range(20):
                tg.start_soon(submit, client, key, f"x{n}")
        balance = (await client.get("/api/balance", headers=bearer(key))).json()["token_balance"]
        assert balance == 1000 - 20 * 10
