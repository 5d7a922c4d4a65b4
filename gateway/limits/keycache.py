"""API keys looked up by hash, kept for a moment: a change made here or announced by another replica drops one at once."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from gateway.store import keys
from gateway.store.db import Database
from gateway.store.keys import ApiKey
from gateway.streams.events import EventBus

TTL_SECONDS = 1.0
MAX_ENTRIES = 100_000


class _Lookup:
    """One read of a key from the database, which every request that needs the key meanwhile awaits."""

    __slots__ = ("done", "error", "key", "read")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.read = False  # False when its reader was cancelled (a client gone): a waiter reads again
        self.key: ApiKey | None = None
        self.error: Exception | None = None  # the read's failure, which each waiter hears too


class KeyCache:
    """Saves the database read that authenticating every request would cost.

    A revoke, update or credit made through this replica (or announced by another over the event bus)
    forgets the key at once; one made straight on the database (`gateway keys …`) is seen within
    `ttl` seconds. Balances are never taken from here: debits and `/api/balance` read the database.

    When a key's entry runs out, the requests that need it meanwhile wait for one read, not one each:
    under a burst every expiry sent every request in flight to the database at once (on PostgreSQL,
    600 reads in 16 seconds of creates, each holding a pooled connection).
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
        self._reading: dict[str, _Lookup] = {}
        self._forgotten = 0  # how many times a key was forgotten: a read begun before one is not kept
        self._listeners: list[Callable[[str], None]] = []
        bus.on_key_changed(self.forget)

    def on_changed(self, callback: Callable[[str], None]) -> None:
        """Call `callback(key_id)` whenever a key changes, here or on another replica."""
        self._listeners.append(callback)

    async def find_active(self, key_hash: str) -> ApiKey | None:
        while True:
            found = self._by_hash.get(key_hash)
            if found is not None and self.clock() - found[1] < self.ttl:
                return found[0]
            lookup = self._reading.get(key_hash)
            if lookup is None:
                return await self._read(key_hash)
            await lookup.done.wait()
            if lookup.error is not None:
                raise lookup.error
            if lookup.read:
                return lookup.key

    async def _read(self, key_hash: str) -> ApiKey | None:
        lookup = self._reading[key_hash] = _Lookup()
        began, forgotten = self.clock(), self._forgotten
        try:
            key = lookup.key = await keys.find_active_by_hash(self.db, key_hash)
            lookup.read = True
        except Exception as exc:
            lookup.error = exc
            raise
        finally:
            if self._reading.get(key_hash) is lookup:
                del self._reading[key_hash]
            lookup.done.set()
        if key is None:
            self._by_hash.pop(key_hash, None)
        elif forgotten == self._forgotten:  # else a change may have come after the read: not kept
            if len(self._by_hash) >= MAX_ENTRIES:
                self._by_hash.clear()
                self._hash_of.clear()
            self._by_hash[key_hash] = (key, began)
            self._hash_of[key.id] = key_hash
        return key

    def forget(self, key_id: str) -> None:
        # A read on its way may have begun before the change: requests from now on do not wait for it.
        self._forgotten += 1
        self._reading.clear()
        key_hash = self._hash_of.pop(key_id, None)
        if key_hash is not None:
            self._by_hash.pop(key_hash, None)
        for callback in self._listeners:
            callback(key_id)

    async def changed(self, key_id: str) -> None:
        """A key was revoked, updated or credited here: forget it, and tell the other replicas."""
        self.forget(key_id)
        await self.bus.key_changed(key_id)
