"""The key and rate-limit caches: a read saved per request, changes seen at once or within a second."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import pytest

from gateway.limits.keycache import KeyCache
from gateway.store import keys
from gateway.store.db import Database
from gateway.store.keys import ApiKey
from gateway.store.records import Row
from gateway.streams.events import EventHub
from tests.conftest import Harness, admin_headers, bearer

pytestmark = pytest.mark.anyio


async def test_a_revoke_through_the_admin_api_is_refused_at_once(harness: Harness) -> None:
    key, record = await harness.new_key(10)
    assert (await harness.client.get("/api/balance", headers=bearer(key))).status_code == 200
    await harness.client.delete(f"/admin/keys/{record['id']}", headers=admin_headers())
    assert (await harness.client.get("/api/balance", headers=bearer(key))).status_code == 401


async def test_a_change_made_on_the_database_is_seen_within_the_ttl(harness: Harness) -> None:
    db = harness.app.state.services.db
    now = [100.0]
    cache = KeyCache(db, EventHub(), ttl=1.0, clock=lambda: now[0])
    key, record = await harness.new_key(10)
    assert await cache.find_active(keys.hash_key(key)) is not None
    await keys.revoke(db, record["id"])  # as `gateway keys revoke` does, from another process
    now[0] += 0.5
    assert await cache.find_active(keys.hash_key(key)) is not None  # still within the second
    now[0] += 0.6
    assert await cache.find_active(keys.hash_key(key)) is None
    assert await cache.find_active("no-such-hash") is None


async def test_rate_limit_headers_read_a_shared_counter_at_most_once_a_second() -> None:
    from gateway.limits.ratelimit import MemoryCounter, RateLimiter

    class Counting(MemoryCounter):
        reads = 0

        async def current(self, key_id: str, window_start: int) -> int:
            Counting.reads += 1
            return await super().current(key_id, window_start)

    now = [1_000_020.0]
    limiter = RateLimiter(10, Counting(), clock=lambda: now[0])
    await limiter.hit("key_a", None)
    Counting.reads = 0  # (the in-memory increment reads on its own)
    for _ in range(5):
        assert (await limiter.headers("key_a", None))["X-RateLimit-Remaining"] == "9"
    assert Counting.reads == 0  # the count the hit returned serves the headers
    now[0] += 1.5
    await limiter.headers("key_a", None)
    assert Counting.reads == 1


class CountedReads:
    """The harness's database, counting key reads; `gate`, while set, holds each read's answer until
    it opens (the row as it was read)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.reads = 0
        self.gate: anyio.Event | None = None
        self.read = anyio.Event()  # set once a read has its row

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        self.reads += 1
        row = await self.db.fetchone(sql, params)
        self.read.set()
        if self.gate is not None:
            await self.gate.wait()
        return row


async def test_requests_that_find_a_key_expired_together_wait_for_one_read(harness: Harness) -> None:
    db = CountedReads(harness.app.state.services.db)
    now = [100.0]
    cache = KeyCache(db, EventHub(), ttl=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    key, record = await harness.new_key(10)
    assert await cache.find_active(keys.hash_key(key)) is not None
    now[0] += 1.5  # the entry ran out; a burst of requests arrives
    db.gate = anyio.Event()
    found: list[ApiKey | None] = []

    async def authenticate() -> None:
        found.append(await cache.find_active(keys.hash_key(key)))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(authenticate)
        await anyio.wait_all_tasks_blocked()
        db.gate.set()
    assert db.reads == 2  # the first lookup, then one for the whole burst
    assert [k.id if k else None for k in found] == [record["id"]] * 50


async def test_a_change_during_a_read_is_not_hidden_by_it(harness: Harness) -> None:
    db = CountedReads(harness.app.state.services.db)
    cache = KeyCache(db, EventHub(), ttl=60.0)  # type: ignore[arg-type]
    key, record = await harness.new_key(10)
    db.gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(cache.find_active, keys.hash_key(key))
        await db.read.wait()  # the row is read, not yet answered: now the key is revoked
        await keys.revoke(harness.app.state.services.db, record["id"])
        await cache.changed(record["id"])
        db.gate.set()
    # The read begun before the revoke is not kept; the next request reads again and is refused.
    assert await cache.find_active(keys.hash_key(key)) is None
    assert db.reads == 2


class FailingReads:
    """A database whose key reads fail after `delay` seconds, counted."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.reads = 0

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        self.reads += 1
        await anyio.sleep(self.delay)
        raise ConnectionError("the database is gone")


async def test_requests_waiting_for_a_read_that_fails_fail_with_it_at_once() -> None:
    db = FailingReads(0.2)
    cache = KeyCache(db, EventHub())  # type: ignore[arg-type]
    failed_after: list[float] = []

    async def authenticate() -> None:
        started = anyio.current_time()
        with pytest.raises(ConnectionError):
            await cache.find_active("some-hash")
        failed_after.append(anyio.current_time() - started)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(authenticate)
    assert db.reads == 1 and len(failed_after) == 8
    assert max(failed_after) < 0.4  # each heard the one failure, none waited for a read of its own


async def test_when_the_reading_request_is_cancelled_a_waiting_one_reads_for_itself(harness: Harness) -> None:
    db = CountedReads(harness.app.state.services.db)
    cache = KeyCache(db, EventHub())  # type: ignore[arg-type]
    key, record = await harness.new_key(10)
    db.gate = anyio.Event()
    found: list[ApiKey | None] = []

    async def authenticate() -> None:
        found.append(await cache.find_active(keys.hash_key(key)))

    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as leader:  # a client that goes away mid-read
            leader.start_soon(authenticate)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(authenticate)
            await anyio.wait_all_tasks_blocked()
            leader.cancel_scope.cancel()
        db.gate.set()
    assert db.reads == 2
    assert [k.id if k else None for k in found] == [record["id"]]
