"""The Redis engines against a real Redis: the event bus across two replicas, the shared rate-limit window."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from gateway.contract.errors import RateLimited
from gateway.limits.ratelimit import RateLimiter
from gateway.limits.redislimit import TTL_SECONDS, RedisCounter
from gateway.store.event_records import Event
from gateway.streams.events import Mailbox
from gateway.streams.redisbus import RedisBus

pytestmark = pytest.mark.anyio

WAIT = 5.0  # seconds any one expected delivery may take before the test fails


async def _delete_keys(redis_url: str, prefix: str) -> None:
    async with Redis.from_url(redis_url) as client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A deployment of its own on the shared Redis; its keys are deleted afterwards."""
    name = f"gw_test_{secrets.token_hex(6)}:"
    yield name
    await _delete_keys(redis_url, name)


@asynccontextmanager
async def running(*buses: RedisBus) -> AsyncIterator[None]:
    """Each bus serving in the background as the app's task group would run it, subscribed before use."""
    try:
        async with anyio.create_task_group() as tg:
            for bus in buses:
                tg.start_soon(bus.serve)
            with anyio.fail_after(WAIT):
                for bus in buses:
                    await bus.subscribed()
            yield
            tg.cancel_scope.cancel()
    finally:
        for bus in buses:
            await bus.aclose()


def event(job_id: str, seq: int, status: str = "processing", **data: Any) -> Event:
    return Event(job_id, seq, {"status": status, "job_id": job_id, **data})


async def receive(live: Mailbox, count: int) -> list[Event]:
    with anyio.fail_after(WAIT):
        return [await live.receive() for _ in range(count)]


def job() -> str:
    return "job_" + secrets.token_hex(6)


async def test_a_listener_on_one_replica_receives_another_replicas_events_in_order(
    redis_url: str, prefix: str
) -> None:
    a, b = RedisBus(redis_url, prefix, "a"), RedisBus(redis_url, prefix, "b")
    job_id = job()
    async with running(a, b):
        with b.subscribe(job_id) as live:
            sent = [event(job_id, seq, progress=seq, text="é\x1f✓") for seq in range(1, 21)]
            for e in sent:
                await a.publish(e)
            got = await receive(live, len(sent))
    assert [(e.job_id, e.seq, e.data) for e in got] == [(e.job_id, e.seq, e.data) for e in sent]
    assert [e.encoded for e in got] == [e.encoded for e in sent]


async def test_the_publishing_replicas_own_listener_hears_each_event_once(
    redis_url: str, prefix: str
) -> None:
    a, b = RedisBus(redis_url, prefix, "a"), RedisBus(redis_url, prefix, "b")
    job_id = job()
    async with running(a, b):
        with a.subscribe(job_id) as live:
            for seq in (1, 2, 3):
                await a.publish(event(job_id, seq))
            # B's marker is published after A's three, so by the time it arrives through Redis any
            # echo of A's own messages would have arrived before it.
            await b.publish(event(job_id, 4, "marker"))
            got = await receive(live, 4)
            await anyio.sleep(0.1)
            assert live.pending == 0
    assert [e.seq for e in got] == [1, 2, 3, 4]


async def test_two_deployments_on_one_redis_do_not_hear_each_other(redis_url: str, prefix: str) -> None:
    other = f"gw_test_{secrets.token_hex(6)}:"
    a, b = RedisBus(redis_url, prefix, "a"), RedisBus(redis_url, prefix, "b")
    c, d = RedisBus(redis_url, other, "c"), RedisBus(redis_url, other, "d")
    job_id = job()
    try:
        async with running(a, b, c, d):
            with b.subscribe(job_id) as here, c.subscribe(job_id) as there:
                await a.publish(event(job_id, 1))
                assert [e.seq for e in await receive(here, 1)] == [1]
                await d.publish(event(job_id, 7, "marker"))  # after A's, on the other deployment
                assert [e.seq for e in await receive(there, 1)] == [7]
    finally:
        await _delete_keys(redis_url, other)


async def test_remote_terminal_events_reach_the_callbacks_and_nothing_else_does(
    redis_url: str, prefix: str
) -> None:
    a, b = RedisBus(redis_url, prefix, "a"), RedisBus(redis_url, prefix, "b")
    seen: list[str] = []
    b.on_remote_terminal(seen.append)
    remote, local, last = job(), job(), job()
    async with running(a, b):
        await b.publish(event(local, 1, "Canceled"))  # B's own terminal event is not remote
        for seq in (1, 2):
            await a.publish(event(remote, seq))
        await a.publish(event(remote, 3, "Canceled"))  # nobody on B follows it: still reported
        await a.publish(event(last, 1, "Completed"))  # once this is reported, all before it were
        with anyio.fail_after(WAIT):
            while last not in seen:
                await anyio.sleep(0.01)
    assert seen == [remote, last]


async def test_the_subscription_comes_back_after_redis_drops_it(redis_url: str, prefix: str) -> None:
    a, b = RedisBus(redis_url, prefix, "a"), RedisBus(redis_url, prefix, "b")
    job_id = job()
    async with running(a, b), Redis.from_url(redis_url, decode_responses=True) as admin:
        killed = await _kill_clients(admin, f"{prefix}sub:b")
        assert killed == 1
        with b.subscribe(job_id) as live:
            # Whatever is published while B is away is lost (followers read the log): keep
            # publishing until one arrives.
            seq = 0
            with anyio.fail_after(WAIT):
                while True:
                    seq += 1
                    await a.publish(event(job_id, seq))
                    with anyio.move_on_after(0.1):
                        got = await live.receive()
                        break
        assert got.seq <= seq
        assert b.connects >= 2
        assert len(await _clients(admin, f"{prefix}sub:b")) == 1


async def test_an_idle_subscription_is_kept_alive_by_pings(redis_url: str, prefix: str) -> None:
    a = RedisBus(redis_url, prefix, "a")
    b = RedisBus(redis_url, prefix, "b", keepalive_seconds=0.2)
    job_id = job()
    async with running(a, b):
        await anyio.sleep(1.0)  # five keepalive spells without a message: each answered by a pong
        with b.subscribe(job_id) as live:
            await a.publish(event(job_id, 1))
            assert [e.seq for e in await receive(live, 1)] == [1]
    assert b.connects == 1


async def test_without_redis_publishing_still_reaches_local_listeners() -> None:
    """Nothing listens on port 1: the replica keeps serving its own followers and keeps retrying."""
    bus = RedisBus("redis://127.0.0.1:1/0", "gw_test_none:", "a")
    job_id = job()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.serve)
        with bus.subscribe(job_id) as live:
            await bus.publish(event(job_id, 1))
            assert [e.seq for e in await receive(live, 1)] == [1]
        await anyio.sleep(0.3)  # a few failed connects, each logged and backed off
        tg.cancel_scope.cancel()
    await bus.aclose()
    assert bus.connects == 0


async def _clients(admin: Redis, name: str) -> list[dict[str, Any]]:
    clients: list[dict[str, Any]] = await admin.client_list(_type="pubsub")
    return [c for c in clients if c.get("name") == name]


async def _kill_clients(admin: Redis, name: str) -> int:
    """Kill one bus's subscription by its client name, leaving anyone else's on this Redis alone."""
    killed = 0
    for client in await _clients(admin, name):
        killed += await admin.client_kill_filter(_id=client["id"])
    return killed


async def test_a_follower_on_one_replica_streams_a_job_driven_on_another(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """`follow()` on B, the job recorded and published on A: replay, then live events, then the end.

    B's poll is made long so that only live delivery through Redis can finish in time.
    """
    from gateway.store import jobs, keys
    from gateway.store.job_records import NewJob
    from gateway.store.sqlite import SqliteDatabase
    from gateway.streams.replay import follow

    db = SqliteDatabase(tmp_path / "g.sqlite3")
    await db.open()
    a, b = RedisBus(redis_url, prefix, "a"), RedisBus(redis_url, prefix, "b", poll_seconds=60)
    try:
        key = await keys.create(db, key_hash="h", prefix="gw_x", name="k", tokens=50)
        created, _ = await jobs.create(db, NewJob(key.id, "m", "m", "p", "x", "x", None, {}, 10))
        seen: list[Event] = []
        following = anyio.Event()

        async def stream() -> None:
            async for e in follow(db, b, created.id, 0):
                seen.append(e)
                following.set()

        async with running(a, b), anyio.create_task_group() as tg:
            tg.start_soon(stream)
            with anyio.fail_after(WAIT):
                await following.wait()  # the first event came from the log: B is subscribed
                recorded = await jobs.record(db, created.id, {"progress": 50}, {"status": "processing"})
                assert recorded is not None
                await a.publish(recorded)
                finished = await jobs.finish(
                    db, created.id, "completed", {}, {"status": "Completed"}, refund=False
                )
                assert finished is not None
                await a.publish(finished.event)
        assert [e.seq for e in seen] == [1, 2, 3]
        assert seen[-1].terminal
    finally:
        await db.close()


async def test_three_replicas_grant_exactly_the_limit_between_them(redis_url: str, prefix: str) -> None:
    counters = [RedisCounter(redis_url, prefix) for _ in range(3)]
    limiters = [RateLimiter(10, counter, clock=lambda: 1_000_020.0) for counter in counters]
    outcomes: list[bool] = []

    async def hit(limiter: RateLimiter) -> None:
        try:
            await limiter.hit("key_1", None)
            outcomes.append(True)
        except RateLimited:
            outcomes.append(False)

    try:
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(hit, limiters[i % 3])
        assert outcomes.count(True) == 10 and len(outcomes) == 30
        for counter in counters:
            assert await counter.current("key_1", 1_000_020 - 1_000_020 % 60) == 30
            assert await counter.current("key_1", 0) == 0
        async with Redis.from_url(redis_url) as client:
            ttl = await client.ttl(counters[0].key("key_1", 1_000_020 - 1_000_020 % 60))
        assert 0 < ttl <= TTL_SECONDS
    finally:
        for counter in counters:
            await counter.aclose()


async def test_a_burst_of_counts_waits_for_the_pool_instead_of_failing(redis_url: str, prefix: str) -> None:
    counter = RedisCounter(redis_url, prefix)
    counts: list[int] = []

    async def hit() -> None:
        counts.append(await counter.increment("key_burst", 60))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(300):  # far more at once than the pool holds
                tg.start_soon(hit)
    finally:
        await counter.aclose()
    assert sorted(counts) == list(range(1, 301))


async def test_without_redis_the_rate_limit_lets_requests_through(prefix: str) -> None:
    counter = RedisCounter("redis://127.0.0.1:1/0", prefix)  # nothing listens there
    limiter = RateLimiter(1, counter)
    try:
        for _ in range(3):
            await limiter.hit("key_z", 1)  # not a 500, not a 429: the limit guards load, not money
        assert (await limiter.headers("key_z", 1))["X-RateLimit-Remaining"] == "1"
    finally:
        await limiter.aclose()
