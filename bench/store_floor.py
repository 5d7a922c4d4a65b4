"""What a created job's durable writes cost on their own: the floor under `create req/s`.

    .venv/bin/python -m bench.store_floor [--engine sqlite,postgres] [--jobs 10000] [--concurrency 100]
        [--first-events 1000]

`create req/s` runs instant jobs through POST /api/generations, and each one is a whole job: the debit
with the job and its first event, the slot taken, the upstream id recorded, the finish with its
terminal event. This runs those same store calls — the functions the request handler and the runner
call, in the same order, `--concurrency` jobs at a time — with no HTTP, no auth, no runner and no
event fan-out, and prints jobs/s and this process's CPU per job. On PostgreSQL the server's own CPU is
apart: that of its processes serving the benchmark's database, when it runs on this machine. Then, on
a fresh database, one job at a time as `first event c=1` does: how long the writes before a job's
first event take while the jobs before it are still being driven. `bench.run` sets these beside the
bare app's whole request, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from bench.cluster import cpu_seconds, postgres_database
from gateway.store import jobs, keys, shared
from gateway.store.db import Database
from gateway.store.job_records import Job, Lease, NewJob
from gateway.store.postgres import PostgresDatabase
from gateway.store.records import AccountCap
from gateway.store.sqlite import SqliteDatabase

PROVIDER, ACCOUNTS = "tick", [AccountCap("default", 1_000_000)]
LEASE = Lease("floor", 1)


@asynccontextmanager
async def opened(where: str) -> AsyncIterator[Database]:
    """A fresh database: a postgresql:// URL, or else a folder for a SQLite file."""
    db = (
        PostgresDatabase(where)
        if where.startswith("postgresql://")
        else SqliteDatabase(Path(where) / "gw.db")
    )
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def one_job(db: Database, key_id: str) -> None:
    """The writes of one instant job, as the gateway makes them (see jobs.create_job and the runner)."""
    await drive(db, await first_writes(db, key_id))


async def first_writes(db: Database, key_id: str) -> Job:
    """What comes before a new job's first event: on PostgreSQL the request counted in its key's rate
    window (SQLite's gateway counts in its own process), then the debit with the job."""
    if isinstance(db, PostgresDatabase):
        await shared.count_request(db, key_id, int(time.time()) // 60 * 60)
    new = NewJob(
        key_id=key_id,
        model="instant",
        served_model="instant",
        provider=PROVIDER,
        prompt="bench",
        effective_prompt="bench",
        style=None,
        options={},
        cost=1,
        callback_url=None,
        extra_first_event={},
        held=False,
    )
    job, _ = await jobs.create(
        db, new, max_concurrent_jobs=1_000_000, max_queued_jobs=1_000, provider_capacity=1_000_000,
        lease=LEASE, lease_seconds=60,
    )  # fmt: skip
    return job


async def drive(db: Database, job: Job) -> None:
    """What the runner writes for an instant job: its slot, its upstream id, its finish."""
    await shared.take_slot(db, job.id, job.epoch, PROVIDER, ACCOUNTS)
    await jobs.record(db, job.id, {"upstream_id": f"tick-{job.id}", "status": "processing"}, lease=LEASE)
    url = "http://127.0.0.1:9/result.wav"
    await jobs.finish(
        db,
        job.id,
        "completed",
        {"progress": 100, "url": url, "urls": [url], "content_type": "audio/wav"},
        {"status": "Completed", "job_id": job.id, "url": url, "urls": [url], "content_type": "audio/wav"},
        refund=False,
        lease=LEASE,
    )


async def measure(where: str, count: int, concurrency: int) -> dict[str, Any]:
    async with opened(where) as db:
        key = await keys.create(db, key_hash="floor", prefix="floor", name="floor", tokens=count * 2)
        await asyncio.gather(*(one_job(db, key.id) for _ in range(concurrency)))  # warm up
        queue = iter(range(count))

        async def client() -> None:
            for _ in queue:
                await one_job(db, key.id)

        server = await backends_cpu(db)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        after = await backends_cpu(db)
    result = {
        "jobs": count,
        "concurrency": concurrency,
        "wall_s": wall,
        "jobs_per_s": count / wall,
        "cpu_us_per_job": cpu / count * 1e6,
    }
    if after:
        used = sum(seconds - server.get(pid, 0.0) for pid, seconds in after.items())
        result["server_cpu_us_per_job"] = used / count * 1e6
    return result


async def backends_cpu(db: Database) -> dict[int, float]:
    """On PostgreSQL running on this machine (the bench's is on 127.0.0.1), the CPU seconds so far of
    each server process connected to this database; empty on SQLite or where there is none."""
    if not isinstance(db, PostgresDatabase):
        return {}
    rows = await db.fetchall("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return cpu_by_process([int(row["pid"]) for row in rows])


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    """Each process's CPU seconds so far (a process not on this machine, or gone, is left out)."""
    used = {}
    for pid in pids:
        try:
            used[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return used


async def first_event(where: str, count: int) -> dict[str, Any]:
    """One job at a time, as `first event c=1`: how long its first-event writes take while the jobs
    before it are still being driven (each driven by a task of its own, as the runner does)."""
    async with opened(where) as db:
        key = await keys.create(db, key_hash="floor", prefix="floor", name="floor", tokens=count * 2)
        latencies, driving = [], set()
        for _ in range(count):
            started = time.perf_counter()
            job = await first_writes(db, key.id)
            latencies.append(time.perf_counter() - started)
            task = asyncio.create_task(drive(db, job))
            driving.add(task)
            task.add_done_callback(driving.discard)
        await asyncio.gather(*driving)
    latencies.sort()
    return {
        "first_event_p50_ms": latencies[len(latencies) // 2] * 1e3,
        "first_event_p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="sqlite", help="comma-separated: sqlite, postgres")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--first-events", type=int, default=1_000)
    args = parser.parse_args()
    engines = args.engine.split(",")
    print(json.dumps({e: floor(e, args.jobs, args.concurrency, args.first_events) for e in engines}))


def floor(engine: str, count: int, concurrency: int, first_events: int) -> dict[str, Any]:
    """`count` jobs' writes on a fresh database of `engine` (sqlite or postgres), then the first
    events' on another (the first one holds `count` jobs)."""
    with fresh(engine) as where:
        result = asyncio.run(measure(where, count, concurrency))
    with fresh(engine) as where:
        result.update(asyncio.run(first_event(where, first_events)))
    return result


@contextmanager
def fresh(engine: str) -> Iterator[str]:
    """Where a fresh database of `engine` is (see `opened`), for the block: a throw-away PostgreSQL
    database's URL, or a temporary folder."""
    if engine == "postgres":
        with postgres_database() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as folder:
            yield folder


if __name__ == "__main__":
    main()
