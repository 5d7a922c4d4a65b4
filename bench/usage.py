"""Time the operators' usage queries over a million ledger rows, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.usage [--engine sqlite,postgres] [--ledger-rows 1000000] [--days 30]

Fills a fresh database (a temporary SQLite file; a throw-away `gw_bench_*` PostgreSQL database) with
jobs spread over `--days` days, 200 keys and the shipped models: one debit per job, a refund for each
failed or cancelled one (about one in ten), and credits, until the ledger holds `--ledger-rows` rows;
then rebuilds the daily usage roll-up as its migration does for an existing database (timed). Then runs each query GET /admin/usage and GET /admin/jobs make, through the same store functions,
once to warm the cache and then five times, and prints the median and the slowest; `--output`
writes them as JSON. Filling a million rows takes a minute or two on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.cluster import postgres_database
from gateway.store import usage
from gateway.store.db import Database
from gateway.store.postgres import PostgresDatabase
from gateway.store.sqlite import SqliteDatabase
from gateway.store.usage_schema import backfill

MODELS = {"suno": "suno", "luma": "luma", "pika": "pika", "run": "run", "local": "local"}
COSTS = {"suno": 10, "luma": 30, "pika": 10, "run": 30, "local": 5}
KEYS = 200
CREDITS_PER_KEY = 50
RUNS = 5

JOB_COLUMNS = (
    "id", "key_id", "model", "served_model", "provider", "prompt", "effective_prompt", "options",
    "status", "progress", "cost", "refunded", "created_at", "updated_at", "completed_at", "last_event_id",
)  # fmt: skip
LEDGER_COLUMNS = ("key_id", "delta", "reason", "job_id", "balance_after", "note", "created_at")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(ledger_rows: int, days: int, now: datetime) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """("key" | "job" | "ledger", row) in the order they can be inserted."""
    rng = random.Random(13)
    keys = [f"key_{i:016x}" for i in range(KEYS)]
    start = now - timedelta(days=days)
    for key in keys:
        yield "key", (key, f"bench {key}", secrets.token_hex(32), "gw_bench", 10**12, stamp(start))
    written = 0
    for key in keys:
        for c in range(CREDITS_PER_KEY):
            yield "ledger", (key, 10**9, "credit", None, 10**12, "bench", stamp(start + timedelta(hours=c)))
            written += 1
    span = days * 86400
    n = 0
    while written < ledger_rows:
        n += 1
        key = keys[rng.randrange(KEYS)]
        model = rng.choice(list(MODELS))
        created = start + timedelta(seconds=span * n / (ledger_rows * 0.92))
        if created >= now:
            created = now - timedelta(seconds=rng.randrange(1, 600))
        recent = (now - created).total_seconds() < 300
        roll = rng.random()
        status = (
            "processing"
            if recent
            else "failed"
            if roll < 0.07
            else "canceled"
            if roll < 0.09
            else "completed"
        )
        finished = None if recent else created + timedelta(seconds=rng.randrange(5, 300))
        job_id = f"job_{n:020d}"
        cost = COSTS[model]
        yield "job", (
            job_id, key, model, model, MODELS[model], "a bench prompt", "a bench prompt", "{}", status,
            None if recent else 100, cost, int(status in ("failed", "canceled")), stamp(created),
            stamp(finished or created), stamp(finished) if finished else None, 5,
        )  # fmt: skip
        yield "ledger", (key, -cost, "debit", job_id, 10**12, None, stamp(created))
        written += 1
        if status in ("failed", "canceled") and finished is not None:
            yield "ledger", (key, cost, "refund", job_id, 10**12, None, stamp(finished))
            written += 1


def batches(ledger_rows: int, days: int, now: datetime, size: int = 20_000) -> Iterator[dict[str, list[Any]]]:
    batch: dict[str, list[Any]] = {"key": [], "job": [], "ledger": []}
    count = 0
    for table, row in rows(ledger_rows, days, now):
        batch[table].append(row)
        count += 1
        if count >= size:
            yield batch
            batch, count = {"key": [], "job": [], "ledger": []}, 0
    yield batch


def fill_sqlite(path: Path, ledger_rows: int, days: int, now: datetime) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    for batch in batches(ledger_rows, days, now):
        with conn:
            conn.executemany(
                "INSERT INTO api_keys (id, name, key_hash, prefix, balance, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                batch["key"],
            )
            conn.executemany(
                f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})",
                batch["job"],
            )
            conn.executemany(
                f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})",
                batch["ledger"],
            )
    conn.close()


def rebuild_sqlite(path: Path) -> float:
    """The roll-up as its migration computes it for an existing database (the fill inserted finished jobs
    as they are, so the finished-job trigger never saw them); the seconds it took."""
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    with conn:
        conn.execute("DELETE FROM usage_daily")
        for statement in backfill("sqlite"):
            conn.execute(statement)
    took = time.perf_counter() - started
    conn.execute("ANALYZE")
    conn.close()
    return took


async def fill_postgres(url: str, ledger_rows: int, days: int, now: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        for batch in batches(ledger_rows, days, now):
            await conn.copy_records_to_table(
                "api_keys",
                records=batch["key"],
                columns=["id", "name", "key_hash", "prefix", "balance", "created_at"],
            )
            await conn.copy_records_to_table("jobs", records=batch["job"], columns=list(JOB_COLUMNS))
            await conn.copy_records_to_table("ledger", records=batch["ledger"], columns=list(LEDGER_COLUMNS))
    finally:
        await conn.close()


async def rebuild_postgres(url: str) -> float:
    """As rebuild_sqlite, on PostgreSQL."""
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute("DELETE FROM usage_daily")
            for statement in backfill("postgresql"):
                await conn.execute(statement)
        took = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE")
        return took
    finally:
        await conn.close()


def queries(db: Database, now: datetime) -> dict[str, Callable[[], Awaitable[Any]]]:
    end = (now + timedelta(days=1)).date().isoformat()  # as GET /admin/usage asks: whole days, today included
    month, day = (now - timedelta(days=29)).date().isoformat(), now.date().isoformat()
    return {
        "usage, 30 days, group_by=day": lambda: usage.usage(db, month, end, ["day"]),
        "usage, 30 days, group_by=model": lambda: usage.usage(db, month, end, ["model"]),
        "usage, 30 days, group_by=key": lambda: usage.usage(db, month, end, ["key"]),
        "usage, 30 days, group_by=provider": lambda: usage.usage(db, month, end, ["provider"]),
        "usage, 30 days, group_by=day,model (the console)": lambda: usage.usage(
            db, month, end, ["day", "model"]
        ),
        "usage, 30 days, totals": lambda: usage.usage(db, month, end, []),
        "usage, today, group_by=model": lambda: usage.usage(db, day, end, ["model"]),
        "jobs?status=running": lambda: usage.jobs_page(db, statuses=("queued", "processing"), limit=100),
        "jobs (newest 20 of all)": lambda: usage.jobs_page(db, limit=20),
        "jobs?status=failed&provider=luma": lambda: usage.jobs_page(
            db, statuses=("failed",), provider="luma"
        ),
        "jobs?key=…": lambda: usage.jobs_page(db, key_id="key_0000000000000007"),
        "jobs?key=…&status=completed, page 50": lambda: usage.jobs_page(
            db, key_id="key_0000000000000007", statuses=("completed",), offset=1000
        ),
    }


async def time_queries(db: Database, now: datetime) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, query in queries(db, now).items():
        await query()
        seconds = []
        for _ in range(RUNS):
            started = time.perf_counter()
            await query()
            seconds.append(time.perf_counter() - started)
        results[name] = {
            "median_ms": round(statistics.median(seconds) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1),
        }
        print(
            f"  {name:<50} median {results[name]['median_ms']:>8} ms   max {results[name]['max_ms']:>8} ms",
            flush=True,
        )
    return results


async def counts(db: Database) -> dict[str, int]:
    out = {}
    for table in ("ledger", "jobs", "api_keys", "usage_daily"):
        row = await db.fetchone(f"SELECT COUNT(*) FROM {table}")
        out[table] = int(row[0]) if row else 0
    return out


async def measure(
    engine: str, db: Database, filled: float, backfilled: float, now: datetime
) -> dict[str, Any]:
    rows_held = await counts(db)
    print(
        f"{engine}: {rows_held} filled in {filled:.0f} s, roll-up rebuilt in {backfilled:.1f} s", flush=True
    )
    return {
        "rows": rows_held,
        "fill_seconds": round(filled),
        "rollup_backfill_seconds": round(backfilled, 1),
        "queries": await time_queries(db, now),
    }


async def bench_sqlite(ledger_rows: int, days: int, now: datetime) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "usage.sqlite3"
        db = SqliteDatabase(path)
        await db.open()  # the schema, as the gateway migrates it
        await db.close()
        started = time.perf_counter()
        fill_sqlite(path, ledger_rows, days, now)
        filled = time.perf_counter() - started
        backfilled = rebuild_sqlite(path)
        db = SqliteDatabase(path)
        await db.open()
        try:
            return await measure("sqlite", db, filled, backfilled, now)
        finally:
            await db.close()


async def bench_postgres(url: str, ledger_rows: int, days: int, now: datetime) -> dict[str, Any]:
    db = PostgresDatabase(url)
    await db.open()  # the schema, as the gateway migrates it
    try:
        started = time.perf_counter()
        await fill_postgres(url, ledger_rows, days, now)
        filled = time.perf_counter() - started
        backfilled = await rebuild_postgres(url)
        return await measure("postgres", db, filled, backfilled, now)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="sqlite,postgres")
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    results: dict[str, Any] = {"ledger_rows": args.ledger_rows, "days": args.days, "measured_at": stamp(now)}
    for engine in args.engine.split(","):
        if engine == "sqlite":
            results[engine] = asyncio.run(bench_sqlite(args.ledger_rows, args.days, now))
        else:
            with postgres_database() as url:  # dropped after, whatever happens
                results[engine] = asyncio.run(bench_postgres(url, args.ledger_rows, args.days, now))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
