"""The Redis engine of the rate limiter's window counter: one count per key and window for every replica."""

from __future__ import annotations

import logging

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

log = logging.getLogger("gateway.redislimit")

# A window lasts 60 s; its count is kept twice that so a replica whose clock runs a little behind
# still finds it, then Redis forgets it without a sweep.
TTL_SECONDS = 120
# Requests wait for one of these rather than failing: a burst of creates must not exhaust the pool.
POOL_SIZE = 32
POOL_WAIT_SECONDS = 5.0


class RedisCounter:
    """Counts in `{prefix}rate:{key_id}:{window_start}`; INCR is atomic, so replicas never double-grant."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.prefix = prefix
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS
        )
        self._redis: Redis = Redis(connection_pool=pool)
        self._failing = False

    def key(self, key_id: str, window_start: int) -> str:
        return f"{self.prefix}rate:{key_id}:{window_start}"

    async def increment(self, key_id: str, window_start: int) -> int:
        # INCR and EXPIRE in one MULTI: a crash between them cannot leave a count that never expires.
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(self.key(key_id, window_start))
                pipe.expire(self.key(key_id, window_start), TTL_SECONDS)
                count, _ = await pipe.execute()
        except RedisError as error:
            return self._unavailable(error)
        self._failing = False
        return int(count)

    async def current(self, key_id: str, window_start: int) -> int:
        try:
            value = await self._redis.get(self.key(key_id, window_start))
        except RedisError as error:
            return self._unavailable(error)
        return int(value) if value is not None else 0

    def _unavailable(self, error: RedisError) -> int:
        """Without Redis the rate limit is not enforced (it guards load, not money: debits, caps and
        refunds live in the database) rather than every request failing; said once per outage."""
        if not self._failing:
            log.warning("rate limits are not enforced while Redis is unavailable: %s", error)
        self._failing = True
        return 0

    async def aclose(self) -> None:
        await self._redis.aclose()
