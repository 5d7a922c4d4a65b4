"""API keys looked up by hash, kept for a moment: a change made here or announced by another replica drops one at once."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.events import EventBus
from gateway.store import keys
from gateway.store.db import Database
from gateway.store.keys import ApiKey

TTL_SECONDS = 1.0
MAX_ENTRIES = 100_000


class KeyCache:
    """Saves the database read that authenticating every request would cost.

    A revoke, update or credit made through this replica (or announced by another over the event bus)
    forgets the key at once; one made straight on the database (`gateway keys …`) is seen within
    `ttl` seconds. Balances are never taken from here: debits and `/api/balance` read the database.
    """

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.bus = bus
        self.ttl = ttl
        self.clock = clock
        self._by_hash: dict[str, tuple[ApiKey, float]] = {}
        self._hash_of: dict[str, str] = {}
        self._listeners: list[Callable[[str], None]] = []
        bus.on_key_changed(self.forget)

    def on_changed(self, callback: Callable[[str], None]) -> None:
        """Call `callback(key_id)` whenever a key changes, here or on another replica."""
        self._listeners.append(callback)

    async def find_active(self, key_hash: str) -> ApiKey | None:
        found = self._by_hash.get(key_hash)
        now = self.clock()
        if found is not None and now - found[1] < self.ttl:
            return found[0]
        key = await keys.find_active_by_hash(self.db, key_hash)
        if key is None:
            self._by_hash.pop(key_hash, None)
            return None
        if len(self._by_hash) >= MAX_ENTRIES:
            self._by_hash.clear()
            self._hash_of.clear()
        self._by_hash[key_hash] = (key, now)
        self._hash_of[key.id] = key_hash
        return key

    def forget(self, key_id: str) -> None:
        key_hash = self._hash_of.pop(key_id, None)
        if key_hash is not None:
            self._by_hash.pop(key_hash, None)
        for callback in self._listeners:
            callback(key_id)

    async def changed(self, key_id: str) -> None:
        """A key was revoked, updated or credited here: forget it, and tell the other replicas."""
        self.forget(key_id)
        await self.bus.key_changed(key_id)
