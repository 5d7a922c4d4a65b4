"""The store on both engines (a real SQLite file, a real PostgreSQL database): migrations, money rules,
contention, leases and fencing, shared slots and rate windows."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from gateway.contract.errors import IdempotencyConflict, InsufficientTokens, TooManyJobs
from gateway.store import events, jobs, keys, leases, ledger, shared
from gateway.store.db import Database, Tx
from gateway.store.job_records import Idempotency, Job, Lease, NewJob, Settlement
from gateway.store.jobs import NotChanged
from gateway.store.postgres import PostgresDatabase
from gateway.store.records import AccountCap, Place
from gateway.store.schema import migrations
from gateway.store.slots_schema import NEXT_ROUND
from gateway.store.sqlite import SqliteDatabase

pytestmark = pytest.mark.anyio

INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


def new_job(key_id: str, cost: int = 10) -> NewJob:
    return NewJob(key_id, "m", "m", "p", "x", "x", None, {}, cost)


async def funded_key(db: Database, tokens: int) -> str:
    key = await keys.create(db, key_hash=f"h{time.monotonic_ns()}", prefix="gw_x", name="k", tokens=tokens)
    return key.id


async def test_sqlite_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    for _ in range(2):  # a second start applies nothing twice
        db = SqliteDatabase(tmp_path / "g.sqlite3")
        await db.open()
        row = await db.fetchone("PRAGMA user_version")
        assert row is not None and row[0] == len(migrations("sqlite"))
        mode = await db.fetchone("PRAGMA journal_mode")
        assert mode is not None and mode[0] == "wal"
        await db.close()


async def test_three_replicas_migrating_an_empty_postgres_at_once_apply_each_migration_once(
    postgres_url: str,
) -> None:
    replicas = [PostgresDatabase(postgres_url, min_size=1, max_size=2) for _ in range(3)]
    async with anyio.create_task_group() as tg:
        for replica in replicas:
            tg.start_soon(replica.open)
    rows = await replicas[0].fetchall("SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, len(migrations("sqlite")) + 1))
    for replica in replicas:
        await replica.close()


async def test_schema_allows_one_refund_per_job_whatever_the_code_does(db: Database) -> None:
    key_id = await funded_key(db, 50)
    job, _ = await jobs.create(db, new_job(key_id))
    assert await jobs.finish(db, job.id, "failed", {}, {"status": "Error", "job_id": job.id}, refund=True)
    assert (
        await jobs.finish(db, job.id, "failed", {}, {"status": "Error", "job_id": job.id}, refund=True)
        is None
    )
    with pytest.raises(INTEGRITY_ERRORS):
        await db.write(lambda tx: ledger.append_entry(tx, key_id, 10, "refund", job_id=job.id))
    with pytest.raises(INTEGRITY_ERRORS):  # and one debit per job
        await db.write(lambda tx: ledger.append_entry(tx, key_id, -1, "debit", job_id=job.id))
    assert await ledger.balance(db, key_id) == 50 == await ledger.total(db, key_id)


async def test_a_debit_never_takes_the_balance_below_zero(db: Database) -> None:
    key_id = await funded_key(db, 5)

    async def work(tx: Tx) -> None:
        assert await ledger.append_entry(tx, key_id, -6, "debit") is None
        assert await ledger.append_entry(tx, key_id, -5, "debit") == 0

    await db.write(work)
    with pytest.raises(INTEGRITY_ERRORS):  # the schema refuses a negative balance even without the guard
        await db.write(lambda tx: tx.execute("UPDATE api_keys SET balance = -1 WHERE id = ?", (key_id,)))


async def test_a_created_job_is_stored_as_returned_with_its_first_event_and_its_debit(db: Database) -> None:
    key_id = await funded_key(db, 25)
    asked = replace(new_job(key_id, cost=10), extra_first_event={"served_by": "m-\u00e9"}, held=True)
    asked_at = time.time()
    job, first = await jobs.create(db, asked, lease=Lease("replica-a", 1), lease_seconds=12.5)
    lease_row = await db.fetchone("SELECT lease_until FROM jobs WHERE id = ?", (job.id,))
    assert lease_row is not None and asked_at + 12.5 <= lease_row[0] <= time.time() + 12.5

    assert first is not None and first.seq == 1
    assert first.data == {
        "status": "Processing started",
        "job_id": job.id,
        "model": "m",
        "cost": 10,
        "balance": 15,
        "served_by": "m-\u00e9",
    }
    [stored] = await events.after(db, job.id, 0)
    assert stored.json() == first.json()  # the same bytes live and on every replay
    assert job == await jobs.get(db, job.id)
    assert (job.status, job.cost, job.hold, job.owner, job.epoch, job.last_event_id) == (
        "queued",
        10,
        10,
        "replica-a",
        1,
        1,
    )
    assert await ledger.balance(db, key_id) == 15
    rows, _ = await ledger.page(db, key_id, 10, 0)
    assert [(r["reason"], r["delta"], r["job_id"], r["balance_after"]) for r in rows[:1]] == [
        ("debit", -10, job.id, 15)
    ]
    with pytest.raises(InsufficientTokens) as refused:
        await jobs.create(db, new_job(key_id, cost=16))
    assert (refused.value.extra["required"], refused.value.extra["balance"]) == (16, 15)
    assert await jobs.count_unfinished(db, key_id) == 1


async def test_an_idempotent_create_debits_once_and_refuses_another_body(db: Database) -> None:
    key_id = await funded_key(db, 100)
    once = Idempotency("order-42", "hash-a")
    job, first = await jobs.create(db, new_job(key_id), idempotency=once)
    again, no_event = await jobs.create(db, new_job(key_id), idempotency=once)

    assert first is not None and no_event is None
    assert again == job
    assert await ledger.balance(db, key_id) == 90
    with pytest.raises(IdempotencyConflict):
        await jobs.create(db, new_job(key_id), idempotency=Idempotency("order-42", "hash-b"))
    # past its TTL the key is free again: a new job, and the record now names it
    later, _ = await jobs.create(
        db, new_job(key_id), idempotency=Idempotency("order-42", "hash-b"), idempotency_ttl_seconds=0
    )
    assert later.id != job.id
    replayed, _ = await jobs.create(db, new_job(key_id), idempotency=Idempotency("order-42", "hash-b"))
    assert replayed.id == later.id
    assert await ledger.balance(db, key_id) == 80


async def test_forty_concurrent_jobs_on_a_key_funded_for_ten(db: Database) -> None:
    key_id = await funded_key(db, 100)
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            await jobs.create(db, new_job(key_id), max_concurrent_jobs=1000)
            outcomes.append("ok")
        except InsufficientTokens:
            outcomes.append("418")

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(attempt)
    assert outcomes.count("ok") == 10 and outcomes.count("418") == 30
    assert await ledger.balance(db, key_id) == 0 == await ledger.total(db, key_id)
    debits = await db.fetchall("SELECT COUNT(*) FROM ledger WHERE key_id = ? AND reason = 'debit'", (key_id,))
    assert debits[0][0] == 10


async def test_the_concurrent_job_cap_holds_under_contention(db: Database) -> None:
    key_id = await funded_key(db, 1000)
    made: list[bool] = []

    async def attempt() -> None:
        try:
            await jobs.create(db, new_job(key_id), max_concurrent_jobs=5)
            made.append(True)
        except TooManyJobs:
            made.append(False)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(attempt)
    assert made.count(True) == 5
    assert await jobs.count_unfinished(db, key_id) == 5


async def test_a_transaction_cancelled_at_begin_leaves_the_database_usable(db: Database) -> None:
    key_id = await funded_key(db, 5)

    async def credit_once() -> None:
        await ledger.credit(db, key_id, 1)

    for _ in range(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(credit_once)
            await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    assert await ledger.credit(db, key_id, 1) >= 6  # a fresh transaction still begins
    assert await ledger.balance(db, key_id) == await ledger.total(db, key_id)


async def test_a_caller_cancelled_while_its_write_commits_still_learns_what_was_committed(
    db: Database,
) -> None:
    key_id = await funded_key(db, 5)
    seen: list[object] = []

    async def credit_once() -> None:
        seen.append(await ledger.credit(db, key_id, 1))
        seen.append("before the next await")  # e.g. a runner publishing the event it just recorded
        await anyio.lowlevel.checkpoint()
        seen.append("never")

    async with anyio.create_task_group() as tg:
        tg.start_soon(credit_once)
        tg.cancel_scope.cancel()  # delivered while the write waits for its commit
    assert seen == [6, "before the next await"]
    assert await ledger.balance(db, key_id) == 6 == await ledger.total(db, key_id)


async def test_concurrent_writes_are_each_atomic_on_their_own(db: Database) -> None:
    key_id = await funded_key(db, 10)
    outcomes: dict[int, object] = {}

    async def spend(index: int, amount: int) -> None:
        try:
            outcomes[index] = await ledger.credit(db, key_id, -amount)
        except Exception as exc:  # the one that would overdraw fails alone
            outcomes[index] = type(exc).__name__

    async with anyio.create_task_group() as tg:
        for index, amount in enumerate([3, 3, 30, 3]):
            tg.start_soon(spend, index, amount)
    assert outcomes[2] == "InvalidRequest"
    assert sorted(v for k, v in outcomes.items() if k != 2) == [1, 4, 7]  # type: ignore[type-var]
    assert await ledger.balance(db, key_id) == 1 == await ledger.total(db, key_id)


async def test_a_quiet_stream_learns_whether_its_jobs_log_moved_past_what_it_sent(db: Database) -> None:
    key_id = await funded_key(db, 100)
    job, first = await jobs.create(db, new_job(key_id))
    assert first is not None and first.seq == 1
    assert not await events.moved_past(db, job.id, 1)
    await jobs.record(db, job.id, {"progress": 5}, {"status": "Processing", "job_id": job.id})
    assert await events.moved_past(db, job.id, 1)
    assert not await events.moved_past(db, job.id, 2)
    assert not await events.moved_past(db, "job_missing", 0)


async def test_a_lapsed_lease_is_taken_over_and_the_old_driver_is_fenced_off(db: Database) -> None:
    key_id = await funded_key(db, 100)
    now = time.time()
    job, _ = await jobs.create(db, new_job(key_id), lease=Lease("a", 1), lease_seconds=2)
    assert job.lease == Lease("a", 1)
    await jobs.record(
        db, job.id, {"progress": 10}, {"status": "Processing", "job_id": job.id}, lease=job.lease
    )
    assert await leases.claim_lapsed(db, "b", now=now, until=now + 10) == []  # still held
    assert await leases.renew(db, "a", {job.id: 1}, until=now + 3) == {job.id: 1}
    taken = await leases.claim_lapsed(db, "b", now=now + 5, until=now + 15)
    assert [(j.id, j.lease) for j in taken] == [(job.id, Lease("b", 2))]
    with pytest.raises(NotChanged):  # "a" woke up: not one more event
        await jobs.record(db, job.id, {}, {"status": "Processing", "job_id": job.id}, lease=job.lease)
    assert (
        await jobs.finish(db, job.id, "failed", {}, {"status": "Error"}, refund=True, lease=job.lease) is None
    )
    assert await leases.renew(db, "a", {job.id: 1}, until=now + 20) == {}
    event = await jobs.record(
        db, job.id, {}, {"status": "Processing", "job_id": job.id}, lease=taken[0].lease
    )
    assert event is not None and event.seq == 3
    assert await jobs.finish(
        db, job.id, "completed", {}, {"status": "Completed"}, refund=False, lease=taken[0].lease
    )
    assert await ledger.balance(db, key_id) == 90


async def test_a_submit_intent_is_fenced_and_survives_a_take_over(db: Database) -> None:
    key_id = await funded_key(db, 100)
    now = time.time()
    job, _ = await jobs.create(db, new_job(key_id), lease=Lease("a", 1), lease_seconds=2)
    assert not job.submit_uncertain
    await jobs.record_submit_intent(db, job.id, lease=job.lease)
    taken = await leases.claim_lapsed(db, "b", now=now + 5, until=now + 15)
    assert len(taken) == 1 and taken[0].submit_intent_at is not None and taken[0].submit_uncertain
    with pytest.raises(NotChanged):  # "a" woke up: it may not note an intent for a job it lost
        await jobs.record_submit_intent(db, job.id, lease=job.lease)
    await jobs.record(db, job.id, {"upstream_id": "up-1"}, lease=taken[0].lease)
    found = await jobs.get(db, job.id)
    assert found is not None and not found.submit_uncertain
    assert await jobs.finish(
        db, job.id, "completed", {}, {"status": "Completed"}, refund=False, lease=taken[0].lease
    )
    with pytest.raises(NotChanged):  # finished: nothing more
        await jobs.record_submit_intent(db, job.id, lease=taken[0].lease)


async def test_replicas_claiming_at_once_never_share_a_job(db: Database) -> None:
    key_id = await funded_key(db, 1000)
    for _ in range(30):
        await jobs.create(db, new_job(key_id, 1), lease=Lease("dead", 1), lease_seconds=-60)  # born lapsed
    claims: dict[str, list[str]] = {}

    async def claim(owner: str) -> None:
        found = await leases.claim_lapsed(db, owner, now=time.time(), until=time.time() + 60, limit=30)
        claims[owner] = [j.id for j in found]

    async with anyio.create_task_group() as tg:
        for owner in ("r1", "r2", "r3"):
            tg.start_soon(claim, owner)
    everyone = [job_id for ids in claims.values() for job_id in ids]
    assert len(everyone) == len(set(everyone)) == 30
    await leases.release(db, "r1")
    again = await leases.claim_lapsed(db, "r2", now=time.time(), until=time.time() + 60)
    assert sorted(j.id for j in again) == sorted(claims["r1"])  # handed over at once, not after the lease


async def test_provider_slots_are_one_cap_for_every_replica_first_come_first_served(db: Database) -> None:
    key_id = await funded_key(db, 1000)
    made = []
    for _ in range(4):
        job, _ = await jobs.create(db, new_job(key_id, 1), lease=Lease("r", 1), lease_seconds=60)
        made.append(job)
    newest_first = list(reversed(made))
    one = [AccountCap("default", 2)]
    places = [(await shared.take_slot(db, j.id, j.epoch, "p", one)).position for j in newest_first]
    assert places == [2, 1, 0, 0]  # the two oldest hold the slots; the others wait in order
    await jobs.finish(db, made[0].id, "completed", {}, {"status": "Completed"}, refund=False)
    assert [(await shared.take_slot(db, j.id, j.epoch, "p", one)).position for j in newest_first[:2]] == [
        1,
        0,
    ]
    held = await shared.take_slot(db, made[1].id, made[1].epoch, "p", one)
    assert held == Place(0, "default")  # a holder keeps its slot


async def test_each_account_has_its_own_cap_and_jobs_go_to_the_least_loaded_by_weight(db: Database) -> None:
    key_id = await funded_key(db, 1000)
    accounts = [AccountCap("a", 1), AccountCap("b", 3, weight=2.0)]
    made = [
        (await jobs.create(db, new_job(key_id, 1), lease=Lease("r", 1), lease_seconds=60))[0]
        for _ in range(5)
    ]
    places = [await shared.take_slot(db, j.id, j.epoch, "p", accounts) for j in made]
    # b (weight 2) first, then a (0 per 1 < 1 per 2), then b twice (a is at its cap of 1); then full
    assert places == [Place(0, "b"), Place(0, "a"), Place(0, "b"), Place(0, "b"), Place(1)]
    # an account out of rotation is not offered: only its own jobs keep their slots
    await jobs.finish(db, made[1].id, "completed", {}, {"status": "Completed"}, refund=False)
    assert await shared.take_slot(db, made[4].id, made[4].epoch, "p", [AccountCap("b", 3)]) == Place(1)
    assert await shared.take_slot(db, made[4].id, made[4].epoch, "p", accounts) == Place(0, "a")
    load = await shared.provider_load(db, "p")
    assert load.in_flight == {"a": 1, "b": 3} and load.queued == 0
    refused = await jobs.get(db, made[4].id)
    assert refused is not None and refused.account == "a"
    await jobs.record_submit_intent(db, made[4].id)
    await shared.give_back_slot(db, made[4].id, made[4].epoch)  # the account refused the job
    back = await jobs.get(db, made[4].id)
    assert back is not None and back.account is None
    assert back.submit_intent_at is None and not back.submit_uncertain  # refused: surely not submitted
    assert (await shared.provider_load(db, "p")).queued == 1


async def _slot_counts(db: Database) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The counts the triggers keep, and the same counted from the jobs themselves."""
    kept = {
        (r["provider"], r["account"]): int(r["n"])
        for r in await db.fetchall("SELECT provider, account, n FROM slots_held WHERE n <> 0")
    }
    kept_by_key = {
        r["key_id"]: int(r["n"])
        for r in await db.fetchall("SELECT key_id, n FROM slots_held_by_key WHERE n <> 0")
    }
    return kept, kept_by_key


async def _slot_counts_from_jobs(db: Database) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    held = "FROM jobs WHERE has_slot = 1 AND status IN ('queued', 'processing')"
    rows = await db.fetchall(
        f"SELECT provider, COALESCE(account, '') AS account, COUNT(*) AS n {held} GROUP BY provider, account"
    )
    by_key = await db.fetchall(f"SELECT key_id, COUNT(*) AS n {held} GROUP BY key_id")
    return (
        {(r["provider"], r["account"]): int(r["n"]) for r in rows},
        {r["key_id"]: int(r["n"]) for r in by_key},
    )


async def test_the_slot_counts_follow_every_change_of_a_job_whoever_writes_it(db: Database) -> None:
    import random

    rng = random.Random(11)
    keys_ = [await funded_key(db, 10_000) for _ in range(2)]
    accounts = [AccountCap("a", 3), AccountCap("b", 2)]
    lease = Lease("r", 1)
    live: list[Job] = []  # the walk changes unfinished jobs; finished ones leave the list
    for step in range(400):
        action = rng.choice(["create", "create", "take", "take", "give_back", "finish", "cancel", "raw"])
        job = rng.choice(live) if live else None
        if action == "create" or job is None:
            live.append(
                (await jobs.create(db, new_job(rng.choice(keys_), 1), lease=lease, lease_seconds=60))[0]
            )
        elif action == "take":
            await shared.take_slot(db, job.id, job.epoch, "p", rng.sample(accounts, rng.randint(1, 2)))
        elif action == "give_back":
            await shared.give_back_slot(db, job.id, job.epoch)
        elif action in ("finish", "cancel"):
            status = rng.choice(["completed", "failed"]) if action == "finish" else "canceled"
            await jobs.finish(db, job.id, status, {}, {"status": status}, refund=status != "completed")
            live.remove(job)
        else:  # any other writer (an operator's SQL, the CLI): a job moved by hand
            column, value = rng.choice(
                [("status", "processing"), ("status", "failed"), ("account", "b"), ("account", "a")]
            )

            async def by_hand(tx: Tx, job_id: str = job.id, column: str = column, value: str = value) -> None:
                await tx.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, job_id))

            await db.write(by_hand)
            if value == "failed":
                live.remove(job)
        assert await _slot_counts(db) == await _slot_counts_from_jobs(db), f"step {step}: {action}"
    kept, _ = await _slot_counts(db)
    assert sum(kept.values()) > 0  # the walk left slots held: the comparison above was not of empties
    load = await shared.provider_load(db, "p")
    assert load.in_flight == {account or None: n for (_, account), n in kept.items()}


async def test_the_slot_counts_start_from_the_jobs_already_holding_slots(tmp_path: Path) -> None:

    conn = sqlite3.connect(tmp_path / "old.sqlite3")
    scripts = migrations("sqlite")
    for script in scripts[:6]:
        conn.executescript(script)
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) VALUES ('k', 'k', 'h', 'p', 'x')"
    )
    for n, (status, has_slot, account) in enumerate(
        [
            ("processing", 1, "a"),
            ("processing", 1, "a"),
            ("queued", 1, None),
            ("completed", 1, "a"),
            ("queued", 0, None),
        ]
    ):
        conn.execute(
            "INSERT INTO jobs (id, key_id, model, served_model, provider, prompt, effective_prompt, options,"
            " status, cost, created_at, updated_at, has_slot, account) VALUES (?, 'k', 'm', 'm', 'p', 'x', 'x',"
            " '{}', ?, 1, 'x', 'x', ?, ?)",
            (f"j{n}", status, has_slot, account),
        )
    conn.executescript(scripts[6])
    assert dict(((p, a), n) for p, a, n in conn.execute("SELECT provider, account, n FROM slots_held")) == {
        ("p", "a"): 2,
        ("p", ""): 1,
    }
    assert list(conn.execute("SELECT key_id, n FROM slots_held_by_key")) == [("k", 3)]
    conn.close()


async def test_the_queue_is_fair_across_keys(db: Database) -> None:
    burst, single = await funded_key(db, 1000), await funded_key(db, 1000)
    lease = Lease("r", 1)
    burst_jobs = [
        (await jobs.create(db, new_job(burst, 1), lease=lease, lease_seconds=60))[0] for _ in range(6)
    ]
    cap = [AccountCap("default", 1)]
    assert await shared.take_slot(db, burst_jobs[0].id, 1, "p", cap) == Place(0, "default")
    for job in burst_jobs[1:]:
        await shared.take_slot(db, job.id, 1, "p", cap)
    lone, _ = await jobs.create(db, new_job(single, 1), lease=lease, lease_seconds=60)
    # behind the burst's next job only, not behind all five of its waiting jobs
    assert await shared.take_slot(db, lone.id, 1, "p", cap) == Place(2)
    assert [(await shared.take_slot(db, j.id, 1, "p", cap)).position for j in burst_jobs[1:]] == [
        1,
        3,
        4,
        5,
        6,
    ]


async def test_the_schema_allows_one_settle_row_per_job(db: Database) -> None:
    key_id = await funded_key(db, 100)
    job, _ = await jobs.create(db, replace(new_job(key_id, 50), held=True))
    assert job.hold == 50
    done = await jobs.finish(
        db, job.id, "completed", {}, {"status": "Completed"}, refund=False, settle=Settlement(20, "made 4 s")
    )
    assert done is not None and done.job.cost == 20 and done.job.hold == 50
    assert await ledger.balance(db, key_id) == 80 == await ledger.total(db, key_id)
    rows, _ = await ledger.page(db, key_id, 10, 0)
    assert [(r["reason"], r["delta"], r["note"]) for r in rows[:2]] == [
        ("settle", 30, "made 4 s"),
        ("debit", -50, None),
    ]

    async def second_settle(tx: Tx) -> None:
        await ledger.append_entry(tx, key_id, 5, "settle", job_id=job.id)

    with pytest.raises(INTEGRITY_ERRORS):
        await db.write(second_settle)
    assert await ledger.balance(db, key_id) == 80


async def test_a_settled_price_above_the_hold_is_refused(db: Database) -> None:
    key_id = await funded_key(db, 100)
    job, _ = await jobs.create(db, replace(new_job(key_id, 50), held=True))
    with pytest.raises(ValueError):
        await jobs.finish(
            db, job.id, "completed", {}, {"status": "Completed"}, refund=False, settle=Settlement(60, "x")
        )
    assert await ledger.balance(db, key_id) == 50


async def test_a_key_may_queue_only_so_many_jobs(db: Database) -> None:
    key_id = await funded_key(db, 100)
    for _ in range(2):
        await jobs.create(db, new_job(key_id, 1), max_queued_jobs=2)
    with pytest.raises(TooManyJobs):
        await jobs.create(db, new_job(key_id, 1), max_queued_jobs=2)
    assert await ledger.balance(db, key_id) == 98  # the refused one debited nothing


async def test_rate_windows_count_every_request_once(db: Database) -> None:
    counts: list[int] = []

    async def hit() -> None:
        counts.append(await shared.count_request(db, "key_1", 600))

    async with anyio.create_task_group() as tg:
        for _ in range(25):
            tg.start_soon(hit)
    assert sorted(counts) == list(range(1, 26))
    assert await shared.requests_counted(db, "key_1", 600) == 25
    assert await shared.requests_counted(db, "key_1", 660) == 0


async def test_a_singleton_lock_has_one_holder_until_it_lapses(db: Database) -> None:
    assert await shared.hold(db, "sweep", "a", now=100, until=110)
    assert not await shared.hold(db, "sweep", "b", now=105, until=115)
    assert await shared.hold(db, "sweep", "a", now=105, until=115)  # the holder renews
    assert await shared.hold(db, "sweep", "b", now=116, until=126)  # lapsed: another takes it


async def test_one_replica_at_a_time_delivers_a_jobs_webhook(db: Database) -> None:
    from gateway.store import webhooks

    key_id = await funded_key(db, 100)
    job, _ = await jobs.create(db, new_job(key_id))
    assert await webhooks.claim(db, job.id, "http://hook", "a", 60, 5)
    assert not await webhooks.claim(db, job.id, "http://hook", "b", 60, 5)  # a holds it
    assert not await webhooks.claim(db, job.id, "http://hook", "a", 60, 5)  # nor a second round of a
    await webhooks.record_attempt(db, job.id, "answered 500")
    await webhooks.record_attempt(db, job.id, None)
    assert not await webhooks.claim(db, job.id, "http://hook", "b", -1, 5)  # delivered: never again
    row = await db.fetchone(
        "SELECT attempts, delivered_at FROM webhook_deliveries WHERE job_id = ?", (job.id,)
    )
    assert row is not None and row[0] == 2 and row[1] is not None


async def test_only_the_jobs_a_replica_drives_are_renewed(db: Database) -> None:
    key_id = await funded_key(db, 100)
    now = time.time()
    driven, _ = await jobs.create(db, new_job(key_id), lease=Lease("a", 1), lease_seconds=5)
    orphan, _ = await jobs.create(db, new_job(key_id), lease=Lease("a", 1), lease_seconds=5)
    assert await leases.renew(db, "a", {driven.id: 1}, until=now + 60) == {driven.id: 1}
    # A previous life of "a" held the orphan: it lapses, and is taken up, by another or by "a" restarting.
    assert [j.id for j in await leases.claim_lapsed(db, "b", now=now + 10, until=now + 20)] == [orphan.id]


async def test_a_restarted_instance_takes_its_own_jobs_back_at_once(db: Database) -> None:
    key_id = await funded_key(db, 100)
    now = time.time()
    job, _ = await jobs.create(db, new_job(key_id), lease=Lease("a", 1), lease_seconds=60)
    assert await leases.claim_lapsed(db, "a", now=now, until=now + 60) == []
    again = await leases.claim_lapsed(db, "a", now=now, until=now + 60, own_too=True)
    assert [(j.id, j.epoch) for j in again] == [(job.id, 2)]


async def test_a_write_that_cannot_begin_fails_every_caller_of_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.store.sqlite.BUSY_TIMEOUT_MS", 200)  # the batch gives up sooner than 5 s
    db = SqliteDatabase(tmp_path / "g.sqlite3")
    await db.open()
    key_id = await funded_key(db, 100)
    other = sqlite3.connect(tmp_path / "g.sqlite3", isolation_level=None)
    other.execute("PRAGMA busy_timeout = 0")
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock past our busy_timeout
    outcomes: list[str] = []

    async def credit() -> None:
        try:
            await ledger.credit(db, key_id, 1)
            outcomes.append("ok")
        except sqlite3.OperationalError:
            outcomes.append("locked")

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(credit)
    assert outcomes == ["locked"] * 3
    other.execute("ROLLBACK")
    other.close()
    assert await ledger.credit(db, key_id, 1) == 101  # and the next write goes through
    await db.close()


async def test_undelivered_webhooks_are_the_recent_finished_jobs_nobody_delivered(db: Database) -> None:
    from gateway.store import webhooks

    key_id = await funded_key(db, 100)
    made = []
    for _ in range(3):
        job, _ = await jobs.create(
            db, NewJob(key_id, "m", "m", "p", "x", "x", None, {}, 1, callback_url="http://hook")
        )
        await jobs.finish(db, job.id, "completed", {}, {"status": "Completed"}, refund=False)
        made.append(job.id)
    await webhooks.claim(db, made[0], "http://hook", "a", 60, 5)
    await webhooks.record_attempt(db, made[0], None)  # delivered
    await db.write(
        lambda tx: tx.execute(
            "UPDATE jobs SET completed_at = '2000-01-01T00:00:00Z' WHERE id = ?", (made[1],)
        )
    )
    assert await webhooks.undelivered(db, 5) == [made[2]]  # not the delivered one, not the old one


async def test_a_new_jobs_round_is_read_from_the_ends_of_two_indexes_without_statistics(
    db: Database,
) -> None:
    # PostgreSQL plans create_job's statements once per session, often before `jobs` has statistics:
    # a MAX, or a Sort of the "one row" expected, was planned as a scan of every job of the provider
    # (4 ms a create at 10 000 jobs), and kept.
    key_id = await funded_key(db, 10)
    await db.write_one(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
        " INSERT INTO jobs (id, key_id, model, served_model, provider, prompt, effective_prompt, options,"
        " status, cost, created_at, updated_at, has_slot, queue_round)"
        " SELECT 'job_' || i, ?, 'm', 'm', 'p', 'x', 'x', '{}',"
        " CASE WHEN i % 3 = 0 THEN 'processing' ELSE 'completed' END, 1, 'x', 'x', i % 2, i FROM n",
        (key_id,),
    )
    rounds = NEXT_ROUND.format(key="?", provider="?")
    if db.dialect == "sqlite":
        rows = await db.fetchall(f"EXPLAIN QUERY PLAN SELECT {rounds}", (key_id, "p", "p"))
        plan = " ".join(str(tuple(row)) for row in rows)
        assert "jobs_unfinished_rounds" in plan and "jobs_waiting " in plan, plan
        return
    assert isinstance(db, PostgresDatabase)
    async with db.pool.acquire() as conn, conn.transaction():
        # as create_job runs it: with its own settings, planned once for every key and provider
        for setting in await conn.fetchval("SELECT proconfig FROM pg_proc WHERE proname = 'create_job'"):
            name, value = setting.split("=", 1)
            await conn.execute(f"SET LOCAL {name} = {value}")
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(
            "PREPARE next_round(text, text) AS SELECT " + NEXT_ROUND.format(key="$1", provider="$2")
        )
        rows = await conn.fetch(f"EXPLAIN EXECUTE next_round('{key_id}', 'p')")
        await conn.execute("DEALLOCATE next_round")
    plan = "\n".join(row[0] for row in rows)
    assert "Index Only Scan Backward using jobs_unfinished_rounds" in plan, plan
    assert "using jobs_waiting on" in plan and "Sort" not in plan, plan
