"""The key and rate-limit caches: a read saved per request, changes seen at once or within a second."""

from __future__ import annotations

import pytest

from gateway import auth
from gateway.events import EventHub
from gateway.keycache import KeyCache
from gateway.store import keys
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
    assert await cache.find_active(auth.hash_key(key)) is not None
    await keys.revoke(db, record["id"])  # as `gateway keys revoke` does, from another process
    now[0] += 0.5
    assert await cache.find_active(auth.hash_key(key)) is not None  # still within the second
    now[0] += 0.6
    assert await cache.find_active(auth.hash_key(key)) is None
    assert await cache.find_active("no-such-hash") is None


async def test_rate_limit_headers_read_a_shared_counter_at_most_once_a_second() -> None:
    from gateway.ratelimit import MemoryCounter, RateLimiter

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
