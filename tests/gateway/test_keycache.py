"""The key cache: a read saved per request, a change through the API seen at once, one made on the database within its TTL."""

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
