"""The store on a real SQLite file: migrations, the schema's refund-once rule, cancellation safety."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from gateway.store import jobs, keys, ledger
from gateway.store.db import MIGRATIONS, Database
from gateway.store.jobs import NewJob

pytestmark = pytest.mark.anyio


async def open_db(tmp_path: Path) -> Database:
    db = Database(tmp_path / "g.sqlite3")
    await db.open()
    return db


async def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    await db.close()
    db = await open_db(tmp_path)  # a second start applies nothing twice
    row = await db.fetchone("PRAGMA user_version")
    assert row is not None and row[0] == len(MIGRATIONS)
    mode = await db.fetchone("PRAGMA journal_mode")
    assert mode is not None and mode[0] == "wal"
    await db.close()


async def test_schema_allows_one_refund_per_job_whatever_the_code_does(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    key = await keys.create(db, key_hash="h", prefix="gw_x", name="k", tokens=50)
    job, _ = await jobs.create(db, NewJob(key.id, "m", "m", "p", "x", "x", None, {}, 10))
    assert await jobs.finish(db, job.id, "failed", {}, {"status": "Error", "job_id": job.id}, refund=True)
    assert (
        await jobs.finish(db, job.id, "failed", {}, {"status": "Error", "job_id": job.id}, refund=True)
        is None
    )
    with pytest.raises(sqlite3.IntegrityError):
        await db.write(lambda conn: ledger.append_entry(conn, key.id, 10, "refund", job_id=job.id))
    assert await ledger.balance(db, key.id) == 50 == await ledger.total(db, key.id)
    await db.close()


async def test_a_debit_never_takes_the_balance_below_zero(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    key = await keys.create(db, key_hash="h", prefix="gw_x", name="k", tokens=5)

    def work(conn: sqlite3.Connection) -> None:
        assert ledger.append_entry(conn, key.id, -6, "debit") is None
        assert ledger.append_entry(conn, key.id, -5, "debit") == 0

    await db.write(work)
    await db.close()


async def test_a_transaction_cancelled_at_begin_leaves_the_database_usable(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    key = await keys.create(db, key_hash="h", prefix="gw_x", name="k", tokens=5)

    async def credit_once() -> None:
        await ledger.credit(db, key.id, 1)

    for _ in range(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(credit_once)
            await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    assert await ledger.credit(db, key.id, 1) >= 6  # a fresh transaction still begins
    assert await ledger.balance(db, key.id) == await ledger.total(db, key.id)
    await db.close()


async def test_group_commit_keeps_each_write_atomic_on_its_own(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    key = await keys.create(db, key_hash="h", prefix="gw_x", name="k", tokens=10)
    outcomes: dict[int, object] = {}

    async def spend(index: int, amount: int) -> None:
        try:
            outcomes[index] = await ledger.credit(db, key.id, -amount)
        except Exception as exc:  # the one that would overdraw fails alone
            outcomes[index] = type(exc).__name__

    async with anyio.create_task_group() as tg:
        for index, amount in enumerate([3, 3, 30, 3]):
            tg.start_soon(spend, index, amount)
    assert outcomes[2] == "InvalidRequest"
    assert sorted(v for k, v in outcomes.items() if k != 2) == [1, 4, 7]  # type: ignore[type-var]
    assert await ledger.balance(db, key.id) == 1 == await ledger.total(db, key.id)
    await db.close()
