"""Per-key request rate on the creating endpoints (a fixed one-minute window) and the X-RateLimit headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from gateway.contract.errors import RateLimited
from gateway.store import shared
from gateway.store.db import Database

WINDOW = 60
SEEN_SECONDS = 1.0


class WindowCounter(Protocol):
    """Where the per-key counts of the current window live: this process, the database, or Redis."""

    async def increment(self, key_id: str, window_start: int) -> int:
        """Count one request in the window and return the window's count, this one included."""
        ...

    async def current(self, key_id: str, window_start: int) -> int: ...

    async def aclose(self) -> None: ...


class MemoryCounter:
    """The in-process engine: one process counts alone."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    async def increment(self, key_id: str, window_start: int) -> int:
        count = await self.current(key_id, window_start) + 1
        self._windows[key_id] = (window_start, count)
        if len(self._windows) > 100_000:  # forget idle keys
            self._windows = {k: w for k, w in self._windows.items() if w[0] == window_start}
        return count

    async def current(self, key_id: str, window_start: int) -> int:
        start, count = self._windows.get(key_id, (window_start, 0))
        return count if start == window_start else 0

    async def aclose(self) -> None:
        pass


class RateLimiter:
    def __init__(
        self,
        default_per_minute: int,
        counter: WindowCounter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.default = default_per_minute
        self.counter = counter or MemoryCounter()
        # The count each key was last seen at, by window: the headers of a request that creates
        # nothing are shown from here for a second, rather than one read of Redis or the database
        # per authenticated request (every poll of a job would pay it).
        self._seen: dict[str, tuple[int, int, float]] = {}
        self.clock = clock

    async def aclose(self) -> None:
        await self.counter.aclose()

    def _window_start(self) -> int:
        now = int(self.clock())
        return now - now % WINDOW

    @staticmethod
    def _headers(limit: int, count: int, window_start: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - count)),
            "X-RateLimit-Reset": str(window_start + WINDOW),
        }

    async def headers(self, key_id: str, limit: int | None) -> dict[str, str]:
        start = self._window_start()
        seen = self._seen.get(key_id)
        if seen is not None and seen[0] == start and self.clock() - seen[2] < SEEN_SECONDS:
            count = seen[1]
        else:
            count = await self.counter.current(key_id, start)
            self._remember(key_id, start, count)
        return self._headers(limit or self.default, count, start)

    def _remember(self, key_id: str, window_start: int, count: int) -> None:
        if len(self._seen) > 100_000:  # forget idle keys
            self._seen.clear()
        self._seen[key_id] = (window_start, count, self.clock())

    async def hit(self, key_id: str, limit: int | None) -> dict[str, str]:
        """Count one creating request; 429 `rate_limited` with Retry-After when over the limit.

        Counted first, checked after: one atomic increment decides, whichever replica asks.
        """
        limit = limit or self.default
        start = self._window_start()
        count = await self.counter.increment(key_id, start)
        self._remember(key_id, start, count)
        headers = self._headers(limit, count, start)
        if count > limit:
            retry_after = max(1, int(start + WINDOW - self.clock()) + 1)
            error = RateLimited(
                f"This key may create {limit} jobs a minute; try again in {retry_after} s.", retry_after
            )
            error.headers.update(headers)
            raise error
        return headers


class StoreCounter:
    """The database engine: replicas on one PostgreSQL share the windows without Redis (slower)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def increment(self, key_id: str, window_start: int) -> int:
        return await shared.count_request(self.db, key_id, window_start)

    async def current(self, key_id: str, window_start: int) -> int:
        return await shared.requests_counted(self.db, key_id, window_start)

    async def aclose(self) -> None:
        pass  # the database is closed by its owner
