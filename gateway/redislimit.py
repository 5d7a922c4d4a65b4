"""The Redis engine of the rate limiter's window counter: one count per key and window for every replica."""

from __future__ import annotations

from redis.asyncio import Redis

# A window lasts 60 s; its count is kept twice that so a replica whose clock runs a little behind
# still finds it, then Redis forgets it without a sweep.
TTL_SECONDS = 120


class RedisCounter:
    """Counts in `{prefix}rate:{key_id}:{window_start}`; INCR is atomic, so replicas never double-grant."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.prefix = prefix
        self._redis: Redis = Redis.from_url(redis_url)

    def key(self, key_id: str, window_start: int) -> str:
        return f"{self.prefix}rate:{key_id}:{window_start}"

    async def increment(self, key_id: str, window_start: int) -> int:
        # INCR and EXPIRE in one MULTI: a crash between them cannot leave a count that never expires.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self.key(key_id, window_start))
            pipe.expire(self.key(key_id, window_start), TTL_SECONDS)
            count, _ = await pipe.execute()
        return int(count)

    async def current(self, key_id: str, window_start: int) -> int:
        value = await self._redis.get(self.key(key_id, window_start))
        return int(value) if value is not None else 0

    async def aclose(self) -> None:
        await self._redis.aclose()
