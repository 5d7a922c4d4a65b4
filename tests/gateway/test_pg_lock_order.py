"""PostgreSQL's batches lock the rows they share in one order — the providers' lock rows, the slot
counts, the keys' slot counts, then the jobs by id — so a batch of finishes, a batch of slot takes,
a lease renewal and a claim of lapsed jobs never each hold a row the other waits for. Each test holds one batch inside its
locks and looks, from another connection, at which rows it already holds."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import asyncpg
import pytest

from gateway.store import jobs, keys, leases, shared
from gateway.store.db import stamp
from gateway.store.job_records import Job, Lease, NewJob
from gateway.store.postgres import PostgresDatabase
from gateway.store.postgres.progress import _write_statement
from gateway.store.records import AccountCap

pytestmark = pytest.mark.anyio

ACCOUNTS = [AccountCap("a", 10), AccountCap("b", 10)]  # slots go to the least loaded: a, b, a, b …


async def job_of(db: PostgresDatabase, key_id: str) -> Job:
    job, _ = await jobs.create(
        db, NewJob(key_id, "m", "m", "p", "x", "x", None, {}, 1), lease=Lease("r", 1), lease_seconds=60
    )
    return job


async def two_keys_holding_slots(
    db: PostgresDatabase, accounts: list[AccountCap] = ACCOUNTS
) -> tuple[str, str]:
    """Two keys, each with a job holding a slot of provider p (their slot-count rows exist)."""
    made = []
    for name in ("k1", "k2"):
        key = await keys.create(
            db, key_hash=f"h{name}{time.monotonic_ns()}", prefix="gw_x", name=name, tokens=100
        )
        holder = await job_of(db, key.id)
        assert (await shared.take_slot(db, holder.id, holder.epoch, "p", accounts)).position == 0
        made.append(key.id)
    return made[0], made[1]


async def held(conn: asyncpg.Connection, sql: str, *args: object) -> bool:
    """Whether another transaction holds the rows `sql` selects (FOR NO KEY UPDATE NOWAIT)."""
    try:
        async with conn.transaction():
            await conn.fetch(sql + " FOR NO KEY UPDATE NOWAIT", *args)
    except asyncpg.LockNotAvailableError:
        return True
    return False


@asynccontextmanager
async def job_row_held(db: PostgresDatabase, job_id: str) -> AsyncIterator[None]:
    """Another transaction (a lease renewal, say) holds the job's row for the block."""
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM jobs WHERE id = $1 FOR NO KEY UPDATE", job_id)
        yield


async def test_a_batch_of_takes_holds_every_slot_count_it_may_change_before_any_job(
    pg: PostgresDatabase, postgres_url: str
) -> None:
    k1, k2 = await two_keys_holding_slots(pg)
    first, second = await job_of(pg, k1), await job_of(pg, k2)
    blocked = first if first.id > second.id else second  # the batch reaches it last
    looker = await asyncpg.connect(postgres_url)
    places: list[shared.Place] = []

    async def take(job: Job) -> None:
        places.append(await shared.take_slot(pg, job.id, job.epoch, "p", ACCOUNTS))

    try:
        async with anyio.create_task_group() as tg:
            async with job_row_held(pg, blocked.id):
                tg.start_soon(take, first)
                tg.start_soon(take, second)
                with anyio.fail_after(10):  # the batch waits for the held job, every count locked
                    while not await held(
                        looker, "SELECT 1 FROM jobs WHERE id = $1", min(first.id, second.id)
                    ):
                        await anyio.sleep(0.01)
                for key_id in (k1, k2):
                    assert await held(looker, "SELECT 1 FROM slots_held_by_key WHERE key_id = $1", key_id)
                for account in ("a", "b"):  # the first take chooses one: the batch holds both
                    sql = "SELECT 1 FROM slots_held WHERE provider = 'p' AND account = $1"
                    assert await held(looker, sql, account)
        assert sorted(place.position for place in places) == [0, 0]
    finally:
        await looker.close()


@pytest.mark.parametrize(
    ("accounts", "keys_finishing"),
    [(ACCOUNTS, 2), (ACCOUNTS[:1], 2), (ACCOUNTS[:1], 1)],
    ids=["two accounts", "one account, two keys", "one account, one key"],  # the last: as a cancel locks
)
async def test_a_batch_of_finishes_holds_its_slot_counts_before_its_jobs(
    pg: PostgresDatabase, postgres_url: str, accounts: list[AccountCap], keys_finishing: int
) -> None:
    k1, k2 = await two_keys_holding_slots(pg, accounts)
    finishing = [await job_of(pg, k1), await job_of(pg, k2 if keys_finishing == 2 else k1)]
    for job in finishing:
        assert (await shared.take_slot(pg, job.id, job.epoch, "p", accounts)).position == 0
    blocked = max(finishing, key=lambda job: job.id)  # the statement reaches it last
    at = stamp()
    rows = [
        {
            "job": job.id,
            "epoch": job.epoch,
            "changes": {"status": "completed", "completed_at": at},
            "event": json.dumps({"status": "Completed"}),
            "at": at,
        }
        for job in finishing
    ]
    statement = _write_statement(("status", "completed_at"), True)
    looker = await asyncpg.connect(postgres_url)
    try:
        async with anyio.create_task_group() as tg:
            async with job_row_held(pg, blocked.id):
                tg.start_soon(pg.progress._run, statement, [json.dumps(rows)])
                with anyio.fail_after(10):  # the statement waits for the held job, its counts locked
                    while not await held(
                        looker, "SELECT 1 FROM jobs WHERE id = $1", min(j.id for j in finishing)
                    ):
                        await anyio.sleep(0.01)
                for key_id in {job.key_id for job in finishing}:
                    assert await held(looker, "SELECT 1 FROM slots_held_by_key WHERE key_id = $1", key_id)
                for account in [cap.name for cap in accounts]:  # the batch gives back a slot of each
                    sql = "SELECT 1 FROM slots_held WHERE provider = 'p' AND account = $1"
                    assert await held(looker, sql, account)
        counted = await pg.fetchall("SELECT n FROM slots_held_by_key WHERE key_id IN (?, ?)", (k1, k2))
        assert sorted(int(row["n"]) for row in counted) == [1, 1]  # each finish gave its slot back
    finally:
        await looker.close()


async def test_a_refunding_finish_holds_its_slot_counts_before_its_job(
    pg: PostgresDatabase, postgres_url: str
) -> None:
    """A user's cancel (a refund, a transaction of its own) racing the job's completion in a batch."""
    k1, _ = await two_keys_holding_slots(pg)
    job = await job_of(pg, k1)
    place = await shared.take_slot(pg, job.id, job.epoch, "p", ACCOUNTS)
    looker = await asyncpg.connect(postgres_url)
    finished: list[jobs.Finished | None] = []

    async def cancel() -> None:
        finished.append(await jobs.finish(pg, job.id, "canceled", {}, {"status": "Canceled"}, refund=True))

    try:
        async with anyio.create_task_group() as tg:
            async with job_row_held(pg, job.id):
                tg.start_soon(cancel)
                with anyio.fail_after(10):  # the cancel waits for the held job, its counts locked
                    while not await held(looker, "SELECT 1 FROM slots_held_by_key WHERE key_id = $1", k1):
                        await anyio.sleep(0.01)
                sql = "SELECT 1 FROM slots_held WHERE provider = 'p' AND account = $1"
                assert await held(looker, sql, place.account)
        assert finished[0] is not None and finished[0].job.refunded
    finally:
        await looker.close()


async def test_a_claim_of_lapsed_jobs_locks_them_in_id_order_as_a_batch_does(
    pg: PostgresDatabase, postgres_url: str
) -> None:
    # Funded for many jobs: ids are random, and a first id among the lowest takes many tries to get
    # three below it (with 100 tokens about one run in 30 ran out first).
    key = await keys.create(pg, key_hash=f"h{time.monotonic_ns()}", prefix="gw_x", name="k", tokens=10_000)
    # The first job stored comes first in the table, where a claim's plan meets it first; a batch
    # reaches it after every job with a lower id (there are a few).
    first = await job_of(pg, key.id)
    made = [first]
    while sum(job.id < first.id for job in made) < 3:
        made.append(await job_of(pg, key.id))
    await pg.write_one("UPDATE jobs SET lease_until = 0")
    lower = [job.id for job in made if job.id < first.id]
    looker = await asyncpg.connect(postgres_url)
    claimed: list[Job] = []

    async def claim() -> None:
        claimed.extend(await leases.claim_lapsed(pg, "b", now=time.time(), until=time.time() + 60))

    try:
        async with anyio.create_task_group() as tg:
            async with job_row_held(pg, first.id):
                tg.start_soon(claim)
                with anyio.fail_after(10):  # waiting for the held job, it holds every lower id
                    while not await held(looker, "SELECT 1 FROM jobs WHERE id = $1", min(lower)):
                        await anyio.sleep(0.01)
                for job_id in lower:
                    assert await held(looker, "SELECT 1 FROM jobs WHERE id = $1", job_id)
        assert sorted(job.id for job in claimed) == sorted(job.id for job in made)
    finally:
        await looker.close()
