"""PostgreSQL's batched statements: progress events group-committed (the writes that arrive together
share a statement, and each still gets exactly what a write of its own would: its number, its order,
its fence, its error), and quiet streams' looks at the log asked together; and a new job's lease,
counted by the database from its insert."""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from gateway.store import events, jobs, keys, leases, usage
from gateway.store.db import stamp
from gateway.store.job_records import Job, Lease, NewJob
from gateway.store.jobs import NotChanged
from gateway.store.postgres import PostgresDatabase
from gateway.store.records import Row

pytestmark = pytest.mark.anyio


async def leased_jobs(db: PostgresDatabase, n: int) -> list[Job]:
    key = await keys.create(db, key_hash=f"h{time.monotonic_ns()}", prefix="gw_x", name="k", tokens=1000)
    made = []
    for _ in range(n):
        job, _ = await jobs.create(
            db, NewJob(key.id, "m", "m", "p", "x", "x", None, {}, 1), lease=Lease("a", 1), lease_seconds=60
        )
        made.append(job)
    return made


def tick(job: Job, progress: int) -> dict[str, object]:
    return {"status": "Processing", "job_id": job.id, "progress": progress}


async def test_progress_events_arriving_together_share_a_statement_and_keep_each_jobs_order(
    pg: PostgresDatabase,
) -> None:
    made = await leased_jobs(pg, 20)
    numbers: dict[str, list[int]] = {job.id: [] for job in made}

    async def drive(job: Job) -> None:
        for progress in (10, 20, 30):
            event = await jobs.record(
                pg, job.id, {"progress": progress}, tick(job, progress), lease=job.lease
            )
            assert event is not None
            numbers[job.id].append(event.seq)

    before = pg.progress.batches.sent
    async with anyio.create_task_group() as tg:
        for job in made:
            tg.start_soon(drive, job)
    assert pg.progress.batches.sent - before <= 6  # 60 writes, about one statement per round
    for job in made:
        assert numbers[job.id] == [2, 3, 4]  # the first event (1) came with the create
        logged = await events.after(pg, job.id, 1)
        assert [(e.seq, e.data["progress"]) for e in logged] == [(2, 10), (3, 20), (4, 30)]
        stored = await jobs.get(pg, job.id)
        assert stored is not None and stored.progress == 30 and stored.last_event_id == 4


async def test_two_writes_of_one_job_at_once_go_one_after_the_other(pg: PostgresDatabase) -> None:
    [job] = await leased_jobs(pg, 1)
    seqs: dict[int, int] = {}

    async def write(progress: int) -> None:
        event = await jobs.record(pg, job.id, {"progress": progress}, tick(job, progress), lease=job.lease)
        assert event is not None
        seqs[progress] = event.seq

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, 1)
        tg.start_soon(write, 2)
    assert sorted(seqs.values()) == [2, 3]
    logged = await events.after(pg, job.id, 1)
    assert [(e.seq, e.data["progress"]) for e in logged] == sorted((s, p) for p, s in seqs.items())


async def test_a_fenced_write_fails_alone_in_its_statement(pg: PostgresDatabase) -> None:
    old, other = await leased_jobs(pg, 2)
    now = time.time()
    await pg.write_one("UPDATE jobs SET lease_until = 0 WHERE id = ?", (old.id,))
    [taken] = await leases.claim_lapsed(pg, "b", now=now, until=now + 60)
    assert taken.id == old.id and taken.lease == Lease("b", 2)
    outcomes: dict[str, object] = {}

    async def write(job: Job) -> None:
        try:
            outcomes[job.id] = await jobs.record(pg, job.id, {"progress": 5}, tick(job, 5), lease=job.lease)
        except NotChanged:
            outcomes[job.id] = "fenced"

    before = pg.progress.batches.sent
    async with anyio.create_task_group() as tg:
        tg.start_soon(write, old)  # still holding epoch 1
        tg.start_soon(write, other)
    assert pg.progress.batches.sent - before == 1
    assert outcomes[old.id] == "fenced"
    assert await events.after(pg, old.id, 1) == []
    [logged] = await events.after(pg, other.id, 1)
    assert outcomes[other.id] == logged and logged.seq == 2


async def test_changes_without_an_event_share_a_statement_and_each_keeps_its_fence(
    pg: PostgresDatabase,
) -> None:
    made = await leased_jobs(pg, 20)
    fenced, finished = made[0], made[1]
    now = time.time()
    await pg.write_one("UPDATE jobs SET lease_until = 0 WHERE id = ?", (fenced.id,))
    [taken] = await leases.claim_lapsed(pg, "b", now=now, until=now + 60)
    assert taken.id == fenced.id
    await jobs.finish(pg, finished.id, "failed", {"error": "x"}, {"status": "Error"}, refund=True)
    outcomes: dict[str, str] = {}

    async def submitted(job: Job) -> None:
        change = {"upstream_id": f"up-{job.id}", "status": "processing"}
        try:
            assert await jobs.record(pg, job.id, change, lease=job.lease) is None
            outcomes[job.id] = "changed"
        except NotChanged:
            outcomes[job.id] = "not changed"

    before = pg.progress.batches.sent
    async with anyio.create_task_group() as tg:
        for job in made:
            tg.start_soon(submitted, job)
    assert 1 <= pg.progress.batches.sent - before <= 2  # 20 changes: one statement, or two if one was early
    assert outcomes == {job.id: "not changed" if job in (fenced, finished) else "changed" for job in made}
    for job in made:
        stored = await jobs.get(pg, job.id)
        assert stored is not None
        if job in (fenced, finished):
            assert stored.upstream_id is None
        else:
            assert (stored.upstream_id, stored.status) == (f"up-{job.id}", "processing")
            assert stored.last_event_id == 1 and await events.after(pg, job.id, 1) == []  # no event


async def test_a_value_the_database_refuses_fails_its_own_write_and_no_other(pg: PostgresDatabase) -> None:
    good, bad, nul = await leased_jobs(pg, 3)
    errors: dict[str, str] = {}
    numbers: dict[str, int] = {}

    async def write(job: Job, changes: dict[str, object], event: dict[str, object] | None) -> None:
        try:
            logged = await jobs.record(pg, job.id, changes, event, lease=job.lease)
            numbers[job.id] = logged.seq if logged else 0
        except asyncpg.PostgresError as exc:
            errors[job.id] = type(exc).__name__

    before = pg.progress.batches.sent
    async with anyio.create_task_group() as tg:
        tg.start_soon(write, good, {"progress": 1}, tick(good, 1))
        tg.start_soon(write, bad, {"progress": "not a number"}, tick(bad, 1))
        tg.start_soon(write, nul, {"upstream_id": "up\x00id", "status": "processing"}, None)
    assert pg.progress.batches.sent - before == 1  # they went together, and were refused together
    assert errors == {bad.id: "InvalidTextRepresentationError", nul.id: "UntranslatableCharacterError"}
    assert numbers == {good.id: 2}  # tried again on its own, it was written
    assert [e.seq for e in await events.after(pg, good.id, 1)] == [2]
    assert await events.after(pg, bad.id, 1) == []
    stored = await jobs.get(pg, nul.id)
    assert stored is not None and stored.upstream_id is None and stored.status == "queued"


async def test_a_writer_cancelled_while_its_statement_commits_still_learns_its_number(
    pg: PostgresDatabase,
) -> None:
    [job] = await leased_jobs(pg, 1)
    seen: list[object] = []

    async def write() -> None:
        event = await jobs.record(pg, job.id, {"progress": 7}, tick(job, 7), lease=job.lease)
        seen.append(event.seq if event else None)
        await anyio.lowlevel.checkpoint()
        seen.append("never")

    async with anyio.create_task_group() as tg:
        tg.start_soon(write)
        await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert seen == [2]
    assert [e.seq for e in await events.after(pg, job.id, 1)] == [2]


async def test_quiet_streams_checking_the_log_at_once_ask_in_one_statement(pg: PostgresDatabase) -> None:
    moved, still = await leased_jobs(pg, 2)
    await jobs.record(pg, moved.id, {"progress": 1}, tick(moved, 1), lease=moved.lease)
    before = pg.heads.batches.sent
    answers: dict[str, bool] = {}

    async def check(job_id: str) -> None:
        answers[job_id] = await events.moved_past(pg, job_id, 1)

    async with anyio.create_task_group() as tg:
        for job_id in (moved.id, still.id, "job_none"):
            tg.start_soon(check, job_id)
    assert pg.heads.batches.sent - before == 1
    assert answers == {moved.id: True, still.id: False, "job_none": False}


async def test_a_create_that_waits_its_turn_is_born_with_its_whole_lease(pg: PostgresDatabase) -> None:
    key = await keys.create(pg, key_hash="h-wait", prefix="gw_x", name="k", tokens=100)
    conn = await asyncpg.connect(pg.url)
    try:
        holding = conn.transaction()
        await holding.start()
        await conn.execute("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", key.id)  # creates wait
        asked_at = time.time()
        async with anyio.create_task_group() as tg:
            made: list[Job] = []

            async def create() -> None:
                job, _ = await jobs.create(
                    pg,
                    NewJob(key.id, "m", "m", "p", "x", "x", None, {}, 1),
                    lease=Lease("a", 1),
                    lease_seconds=2,
                )
                made.append(job)

            tg.start_soon(create)
            await anyio.sleep(1.5)
            await holding.rollback()
        row = await pg.fetchone("SELECT lease_until FROM jobs WHERE id = ?", (made[0].id,))
        assert row is not None and row[0] >= asked_at + 1.5 + 2  # not lapsed half-way through the wait
        now = time.time()
        assert await leases.claim_lapsed(pg, "b", now=now, until=now + 60) == []
    finally:
        await conn.close()


async def test_finishes_arriving_together_share_a_statement_with_progress_and_each_gets_its_row(
    pg: PostgresDatabase,
) -> None:
    made = await leased_jobs(pg, 10)
    finished: dict[str, jobs.Finished | None] = {}

    async def progress_then_finish(job: Job) -> None:
        await jobs.record(pg, job.id, {"progress": 50}, tick(job, 50), lease=job.lease)
        done = {"status": "Completed", "job_id": job.id, "url": f"https://cdn.example/{job.id}.wav"}
        finished[job.id] = await jobs.finish(
            pg,
            job.id,
            "completed",
            {"url": done["url"], "progress": 100},
            done,
            refund=False,
            lease=job.lease,
        )

    fenced = made[0]
    await pg.write_one("UPDATE jobs SET epoch = epoch + 1 WHERE id = ?", (fenced.id,))  # taken over
    before = pg.progress.batches.sent
    async with anyio.create_task_group() as tg:
        for job in made[1:]:
            tg.start_soon(progress_then_finish, job)
        tg.start_soon(
            lambda: jobs.finish(
                pg, fenced.id, "completed", {}, {"status": "Completed"}, refund=False, lease=fenced.lease
            )
        )
    assert 2 <= pg.progress.batches.sent - before <= 4  # the progress round, then the finishes together
    for job in made[1:]:
        result = finished[job.id]
        assert result is not None
        assert result.job.status == "completed" and result.job.url == f"https://cdn.example/{job.id}.wav"
        assert result.job.completed_at is not None and result.job.progress == 100
        assert result.event.seq == result.job.last_event_id == 3  # created, progress, finished
        logged = await events.after(pg, job.id, 0)
        assert [e.data["status"] for e in logged] == ["Processing started", "Processing", "Completed"]
    stored = await jobs.get(pg, fenced.id)
    assert stored is not None and stored.status == "queued"  # the fenced finish wrote nothing
    counted = await pg.fetchone("SELECT SUM(completed) FROM usage_daily WHERE key_id = ?", (made[1].key_id,))
    assert counted is not None and int(counted[0]) == 9  # the usage roll-up saw each finish once


async def test_a_failed_statement_fails_only_its_own_writes_when_a_batch_takes_two(
    pg: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticking, finishing = await leased_jobs(pg, 2)
    run = pg.progress._run

    async def progress_statement_lost(sql: str, params: Sequence[object]) -> list[Row]:
        if "changed.*" not in sql:  # the progress events' statement fails; the finishes' runs
            await anyio.sleep(0.05)  # and ends after the finish committed
            raise OSError("connection lost")
        return await run(sql, params)

    monkeypatch.setattr(pg.progress, "_run", progress_statement_lost)
    outcome: dict[str, object] = {}

    async def progress() -> None:
        try:
            await jobs.record(pg, ticking.id, {"progress": 5}, tick(ticking, 5), lease=ticking.lease)
        except OSError as exc:
            outcome["progress"] = exc

    async def finish() -> None:
        done = {"status": "Completed", "job_id": finishing.id}
        outcome["finish"] = await jobs.finish(
            pg, finishing.id, "completed", {"progress": 100}, done, refund=False, lease=finishing.lease
        )

    before = pg.progress.batches.sent
    async with anyio.create_task_group() as tg:
        tg.start_soon(progress)
        tg.start_soon(finish)
    assert pg.progress.batches.sent - before == 1  # one batch, sent as two statements
    assert isinstance(outcome["progress"], OSError)
    finished = outcome["finish"]  # committed, and its caller is told so
    assert isinstance(finished, jobs.Finished) and finished.job.status == "completed"
    stored = await jobs.get(pg, finishing.id)
    assert stored is not None and stored.status == "completed"
    assert await events.after(pg, ticking.id, 1) == []  # the failed one wrote nothing


async def test_a_finish_does_not_wait_for_an_open_debit_of_its_key(pg: PostgresDatabase) -> None:
    """A day's usage of a key, model and provider is several rows on PostgreSQL: the ledger's shard,
    where a create batch holds its row until it commits, and the finishing connections' own."""
    finishing, other = await leased_jobs(pg, 2)
    finished: list[jobs.Finished | None] = []

    async def finish() -> None:
        done = {"status": "Completed"}
        finished.append(
            await jobs.finish(pg, finishing.id, "completed", {}, done, refund=False, lease=finishing.lease)
        )

    async with anyio.create_task_group() as tg:
        async with pg.pool.acquire() as conn, conn.transaction():
            # an open transaction holding the ledger's roll-up row of this key, model, provider and day
            await conn.execute(
                "INSERT INTO ledger (key_id, delta, reason, job_id, balance_after, created_at)"
                " VALUES ($1, 1, 'settle', $2, 0, $3)",
                other.key_id,
                other.id,
                stamp(),
            )
            tg.start_soon(finish)
            with anyio.move_on_after(5):  # a finish that waited for that row would wait for this end
                while not finished:
                    await anyio.sleep(0.01)
            finished_before_the_debit_ended = bool(finished)
    assert finished_before_the_debit_ended
    assert finished[0] is not None and finished[0].job.status == "completed"
    (total,) = await usage.usage(pg, finishing.created_at[:10], "9999", [])  # the shards add up
    assert total["jobs"]["completed"] == 1 and total["tokens_debited"] == 2 and total["tokens_settled"] == 1
