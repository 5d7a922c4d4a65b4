"""A revoke ends the key's open streams: on this replica, and on every replica when Redis is configured."""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests import fakes
from tests.conftest import Harness, admin_headers, bearer
from tests.gateway.test_replicas import create, start_replica, until
from tests.sse import parse

pytestmark = pytest.mark.anyio


async def stream_until_it_ends(replica: Harness, url: str, headers: dict[str, str]) -> list[Any]:
    """The stream read to its end (the ASGI transport hands the body over once the stream closes)."""
    with anyio.fail_after(10):
        response = await replica.client.get(url, headers=headers)
    assert response.status_code == 200
    return parse(response.text)


async def revoke_ends_streams(reader: Harness, revoker: Harness, key: str, key_id: str) -> None:
    job_id = await create(revoker, key, processing_on=revoker)
    job = (await revoker.client.get(f"/api/generations/{job_id}", headers=bearer(key))).json()
    token_url = job["events_url"].removeprefix("http://testserver")
    ended: list[list[Any]] = []
    try:
        async with anyio.create_task_group() as tg:
            for url, headers in (
                (f"/api/generations/{job_id}/events", bearer(key)),
                (token_url, {}),
            ):

                async def follow(url: str = url, headers: dict[str, str] = headers) -> None:
                    ended.append(await stream_until_it_ends(reader, url, headers))

                tg.start_soon(follow)
            streams = reader.app.state.services.streams
            await until(lambda: _true(streams.held_by(key_id) == 2))
            revoked = await revoker.client.delete(f"/admin/keys/{key_id}", headers=admin_headers())
            assert revoked.status_code == 200
        # Both ended before the job did: the last event each saw is not a terminal one.
        assert len(ended) == 2
        for events in ended:
            assert events and events[-1][1]["status"] not in ("Completed", "Error", "Canceled")
        again = await reader.client.get(token_url)
        assert again.status_code == 401 and again.json()["code"] == "unauthorized"
    finally:
        fakes.release()


async def _true(value: bool) -> bool:
    return value


async def test_a_revoke_ends_the_keys_open_streams(harness: Harness) -> None:
    key, record = await harness.new_key(100)
    await revoke_ends_streams(harness, harness, key, record["id"])


async def test_other_keys_streams_stay_open(harness: Harness) -> None:
    _, record = await harness.new_key(100)
    other, _ = await harness.new_key(100)
    job_id = await create(harness, other, processing_on=harness)
    async with anyio.create_task_group() as tg:
        seen: list[list[Any]] = []

        async def follow() -> None:
            seen.append(
                await stream_until_it_ends(harness, f"/api/generations/{job_id}/events", bearer(other))
            )

        tg.start_soon(follow)
        bus = harness.app.state.services.bus
        await until(lambda: _true(bus.listener_count > 0))
        await harness.client.delete(f"/admin/keys/{record['id']}", headers=admin_headers())
        fakes.release()
    assert seen[0][-1][1]["status"] == "Completed"


async def test_a_revoke_on_one_replica_ends_streams_on_another(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    engines = {
        "database_url": postgres_url,
        "redis_url": redis_url,
        "redis_prefix": f"gw_test_{secrets.token_hex(4)}:",
        "lease_seconds": 3,
    }
    async with AsyncExitStack() as stack:
        a = await start_replica(stack, tmp_path, "a", **engines)
        b = await start_replica(stack, tmp_path, "b", **engines)
        await b.app.state.services.bus.subscribed()
        key, record = await a.new_key(100)
        await revoke_ends_streams(b, a, key, record["id"])
