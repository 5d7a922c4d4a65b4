"""Live fan-out latency of the event bus: the in-process hub beside Redis between two replicas.

    .venv/bin/python -m bench.fanout [--rate 1000] [--seconds 5] [--jobs 50] [--redis-url URL]

A publisher paces events at `rate` a second over `jobs` jobs, stamping `time.perf_counter()` into
each; one listener per job takes the difference when the event reaches it. The Redis case publishes
on bus A and listens on bus B: two replicas in one process, so one event loop and one clock, over two
Redis connections each (publish and subscribe). Writes `bench/results/fanout.json`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis

from gateway.store.event_records import Event
from gateway.streams.events import EventBus, EventHub
from gateway.streams.redisbus import RedisBus

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_ADDED_P99_MS = 50.0


@dataclass
class Latency:
    sent: int
    received: int
    sent_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float


async def measure(publisher: EventBus, listener: EventBus, rate: int, seconds: float, jobs: int) -> Latency:
    job_ids = [f"bench_{i}" for i in range(jobs)]
    samples: list[float] = []
    total = int(rate * seconds)

    async def listen(job_id: str, *, task_status: TaskStatus[None]) -> None:
        with listener.subscribe(job_id) as live:
            task_status.started()
            async for event in live:
                samples.append(time.perf_counter() - event.data["t"])

    async with anyio.create_task_group() as tg:
        for job_id in job_ids:
            await tg.start(listen, job_id)
        start = time.perf_counter()
        for i in range(total):
            # Paced against the schedule, not the previous send, so a slow publish is caught up.
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            job_id = job_ids[i % jobs]
            data = {"status": "processing", "job_id": job_id, "t": time.perf_counter()}
            await publisher.publish(Event(job_id, i // jobs + 1, data))
        elapsed = time.perf_counter() - start
        with anyio.move_on_after(2.0):  # the last events still in flight
            while len(samples) < total:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()

    ms = sorted(s * 1000 for s in samples) or [float("nan")]
    return Latency(
        sent=total,
        received=len(samples),
        sent_per_second=round(total / elapsed, 1),
        p50_ms=round(statistics.median(ms), 3),
        p99_ms=round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        max_ms=round(ms[-1], 3),
    )


async def redis_fanout(redis_url: str, rate: int, seconds: float, jobs: int) -> Latency:
    prefix = f"gw_bench_{secrets.token_hex(4)}:"
    a, b = RedisBus(redis_url, prefix, "bench-a"), RedisBus(redis_url, prefix, "bench-b")
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.serve)
            tg.start_soon(b.serve)
            with anyio.fail_after(5):
                await a.subscribed()
                await b.subscribed()
            result = await measure(a, b, rate, seconds, jobs)
            tg.cancel_scope.cancel()
    finally:
        await a.aclose()
        await b.aclose()
    return result


async def redis_version(redis_url: str) -> str:
    async with Redis.from_url(redis_url, decode_responses=True) as client:
        info: dict[str, Any] = await client.info("server")
        return str(info.get("redis_version", "?"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=1000, help="events a second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    hub = EventHub()
    local = await measure(hub, hub, args.rate, args.seconds, args.jobs)
    remote = await redis_fanout(args.redis_url, args.rate, args.seconds, args.jobs)
    added = round(remote.p99_ms - local.p99_ms, 3)
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rate_per_second": args.rate,
        "seconds": args.seconds,
        "jobs": args.jobs,
        "redis_version": await redis_version(args.redis_url),
        "note": "both Redis replicas in one process: one event loop, two connections each",
        "in_process": asdict(local),
        "redis": asdict(remote),
        "added_p99_ms": added,
        "target_added_p99_ms": TARGET_ADDED_P99_MS,
        "met": added <= TARGET_ADDED_P99_MS and remote.received == remote.sent,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fanout.json").write_text(json.dumps(results, indent=2) + "\n")

    def cell(r: Latency) -> str:
        return f"{r.p50_ms:.2f} / {r.p99_ms:.2f} / {r.max_ms:.2f} ({r.received}/{r.sent} at {r.sent_per_second:.0f}/s)"

    print("| benchmark | in-process | Redis (A → B) | added p99 | target |")
    print("|---|---|---|---|---|")
    print(
        f"| live fan-out p50/p99/max ms (delivered), {args.rate} ev/s × {args.jobs} jobs, {args.seconds:g} s"
        f" | {cell(local)} | {cell(remote)} | +{added:.2f} ms | ≤ +{TARGET_ADDED_P99_MS:.0f} ms |"
    )


if __name__ == "__main__":
    anyio.run(main)
