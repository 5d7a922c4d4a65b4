"""PostgreSQL's creates and slot takes, many in one statement and one commit: each still gets exactly
the answer it would have had alone — created and debited once, refused for its balance, replayed or
refused for its Idempotency-Key, in its key's order; a slot, or a place in the queue, never more
slots than there are."""

from __future__ import annotations

import anyio
import pytest

from gateway.contract.errors import IdempotencyConflict, InsufficientTokens
from gateway.store import jobs, keys, ledger, shared
from gateway.store.job_records import Idempotency, Job, Lease, NewJob
from gateway.store.postgres import PostgresDatabase
from gateway.store.records import AccountCap

pytestmark = pytest.mark.anyio


async def create(
    db: PostgresDatabase, key_id: str, prompt: str = "x", idempotency: Idempotency | None = None
) -> Job | BaseException:
    try:
        job, _ = await jobs.create(
            db,
            NewJob(key_id, "m", "m", "p", prompt, prompt, None, {}, 10),
            idempotency=idempotency,
            lease=Lease("a", 1),
            lease_seconds=60,
        )
    except (InsufficientTokens, IdempotencyConflict) as exc:
        return exc
    return job


async def all_at_once(*calls: tuple[str, str, Idempotency | None], db: PostgresDatabase) -> list[object]:
    answers: list[object] = [None] * len(calls)

    async def one(i: int) -> None:
        key_id, prompt, idempotency = calls[i]
        answers[i] = await create(db, key_id, prompt, idempotency)

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    return answers


async def test_creates_arriving_together_share_a_statement_and_each_is_debited_once(
    pg: PostgresDatabase,
) -> None:
    made = [
        await keys.create(pg, key_hash=f"h-many-{i}", prefix="gw_x", name="k", tokens=1000) for i in range(3)
    ]
    before = pg.creates.batches.sent
    answers = await all_at_once(*((made[i % 3].id, f"p{i}", None) for i in range(30)), db=pg)
    assert 1 <= pg.creates.batches.sent - before <= 3  # together: at most 50 a statement, none alone
    assert all(isinstance(answer, Job) for answer in answers)
    assert len({answer.id for answer in answers if isinstance(answer, Job)}) == 30
    for key in made:
        assert await ledger.balance(pg, key.id) == 1000 - 10 * 10
        rows = await pg.fetchall(
            "SELECT reason, delta FROM ledger WHERE key_id = ? AND reason = 'debit'", (key.id,)
        )
        assert len(rows) == 10 and sum(int(row["delta"]) for row in rows) == -100
    # a key's creates took turns in the order they came: their queue rounds say so
    for key in made:
        rows = await pg.fetchall("SELECT prompt FROM jobs WHERE key_id = ? ORDER BY rowid", (key.id,))
        prompts = [row["prompt"] for row in rows]
        assert prompts == sorted(prompts, key=lambda p: int(p[1:]))


async def test_in_one_statement_a_key_runs_out_of_tokens_where_it_would_alone(pg: PostgresDatabase) -> None:
    poor = await keys.create(pg, key_hash="h-poor", prefix="gw_x", name="k", tokens=25)
    rich = await keys.create(pg, key_hash="h-rich", prefix="gw_x", name="k", tokens=1000)
    await create(pg, rich.id)
    before = pg.creates.batches.sent
    answers = await all_at_once(*((poor.id, f"p{i}", None) for i in range(4)), (rich.id, "r", None), db=pg)
    assert pg.creates.batches.sent - before == 1
    created = [a for a in answers[:4] if isinstance(a, Job)]
    refused = [a for a in answers[:4] if isinstance(a, InsufficientTokens)]
    assert len(created) == 2 and len(refused) == 2
    assert isinstance(answers[4], Job)
    assert await ledger.balance(pg, poor.id) == 5
    assert await ledger.balance(pg, rich.id) == 980


async def test_in_one_statement_an_idempotency_key_replays_or_conflicts_as_it_would_alone(
    pg: PostgresDatabase,
) -> None:
    key = await keys.create(pg, key_hash="h-idem", prefix="gw_x", name="k", tokens=1000)
    same = Idempotency("order-1", "hash-a")
    other_body = Idempotency("order-1", "hash-b")
    before = pg.creates.batches.sent
    answers = await all_at_once((key.id, "x", same), (key.id, "x", same), (key.id, "y", other_body), db=pg)
    assert pg.creates.batches.sent - before == 1
    jobs_made = [a for a in answers if isinstance(a, Job)]
    assert len(jobs_made) == 2 and jobs_made[0].id == jobs_made[1].id  # created once, replayed once
    assert sum(isinstance(a, IdempotencyConflict) for a in answers) == 1
    assert await ledger.balance(pg, key.id) == 990  # one debit


async def test_slot_takes_in_one_statement_never_give_out_more_slots_than_there_are(
    pg: PostgresDatabase,
) -> None:
    key = await keys.create(pg, key_hash="h-takes", prefix="gw_x", name="k", tokens=1000)
    made = [await create(pg, key.id, f"t{i}") for i in range(12)]
    accounts = [AccountCap("a", 2), AccountCap("b", 1)]
    places: list[shared.Place] = []

    async def take(job: Job) -> None:
        places.append(await shared.take_slot(pg, job.id, job.epoch, "p", accounts))

    before = pg.slot_takes.batches.sent
    async with anyio.create_task_group() as tg:
        for job in made:
            assert isinstance(job, Job)
            tg.start_soon(take, job)
    assert 1 <= pg.slot_takes.batches.sent - before <= 2
    given = sorted(place.account for place in places if place.position == 0 and place.account)
    assert given == ["a", "a", "b"]  # three slots, each account to its cap
    assert sorted(place.position for place in places if place.position) == list(range(1, 10))
    counted = await pg.fetchall("SELECT account, n FROM slots_held WHERE provider = 'p' ORDER BY account")
    assert [(row["account"], int(row["n"])) for row in counted] == [("a", 2), ("b", 1)]


async def test_rate_window_counts_share_a_statement_and_each_request_gets_its_own_count(
    pg: PostgresDatabase, postgres_url: str
) -> None:
    other = PostgresDatabase(postgres_url)  # a second replica on the same database
    await other.open()
    try:
        await shared.count_request(pg, "key_a", 600)  # one already counted
        sent = pg.window_counts.batches.sent
        counts: dict[tuple[str, int], list[int]] = {}
        hits = [("key_a", 600), ("key_b", 600), ("key_a", 660)] * 10

        async def hit(db: PostgresDatabase, window: tuple[str, int]) -> None:
            counts.setdefault(window, []).append(await shared.count_request(db, *window))

        async with anyio.create_task_group() as tg:
            for window in hits:
                tg.start_soon(hit, pg, window)
            for _ in range(5):
                tg.start_soon(hit, other, ("key_a", 600))
        assert 1 <= pg.window_counts.batches.sent - sent <= 2  # one statement, or the first alone and one
        # every request has a count of its own: no two share one, none is skipped
        assert sorted(counts[("key_a", 600)]) == list(range(2, 17))
        assert sorted(counts[("key_b", 600)]) == list(range(1, 11))
        assert sorted(counts[("key_a", 660)]) == list(range(1, 11))
        assert await shared.requests_counted(pg, "key_a", 600) == 16
    finally:
        await other.close()
