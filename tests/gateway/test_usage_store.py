"""The usage reports and the job list across keys, on both engines (a real SQLite file, a real PostgreSQL)."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any
from unittest.mock import patch

import pytest

from gateway.store import jobs, ledger, usage
from gateway.store.db import Database, Tx
from gateway.store.job_records import NewJob, Settlement
from gateway.store.sqlite import SqliteDatabase
from gateway.store.usage_schema import backfill
from tests.gateway.test_store import funded_key

pytestmark = pytest.mark.anyio

START, END = "2026-11-01", "2026-12-01"  # days: the roll-up's grain


async def finished_job(
    db: Database,
    key_id: str,
    *,
    model: str,
    provider: str,
    cost: int,
    status: str | None,
    created: str,
    seconds: int = 0,
) -> str:
    """A job created at `created` and (unless `status` is None) finished `seconds` later, with its
    ledger rows dated as the gateway would have written them at those times (the store's clock is
    stopped there: the roll-up's triggers see the times the rows are written with)."""
    completed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_epoch(created) + seconds))
    with at(created):
        job, _ = await jobs.create(db, NewJob(key_id, model, model, provider, "p", "p", None, {}, cost))
    if status is not None:
        refund = status != "completed"
        with at(completed):
            await jobs.finish(db, job.id, status, {}, {"status": "x", "job_id": job.id}, refund=refund)
    return job.id


# Where the store reads `stamp` for a job's and a ledger row's times: the operations and each engine.
STAMPED = ("jobs", "sqlite.operations", "sqlite", "postgres.operations", "postgres")


@contextmanager
def at(moment: str) -> Iterator[None]:
    """The store's clock (`stamp` as the modules in STAMPED read it) stopped at `moment`."""
    with ExitStack() as patched:
        for module in STAMPED:
            patched.enter_context(patch(f"gateway.store.{module}.stamp", lambda: moment))
        yield


def _epoch(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def by(groups: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [g for g in groups if all(g[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, groups)
    return found[0]


async def seed(db: Database) -> tuple[str, str]:
    alice, bob = await funded_key(db, 1000), await funded_key(db, 1000)
    for status, created, seconds in (
        ("completed", "2026-11-20T10:00:00Z", 10),
        ("failed", "2026-11-20T11:00:00Z", 5),
        ("completed", "2026-11-21T09:00:00Z", 30),
    ):
        await finished_job(
            db, alice, model="suno", provider="suno", cost=10, status=status, created=created, seconds=seconds
        )
    # the last is outside the window: neither counted nor listed as usage
    for status, created, seconds in (
        ("canceled", "2026-11-21T12:00:00Z", 3),
        (None, "2026-11-21T13:00:00Z", 0),
        ("completed", "2026-10-31T10:00:00Z", 9),
    ):
        await finished_job(
            db, bob, model="luma", provider="luma", cost=30, status=status, created=created, seconds=seconds
        )
    await ledger.credit(db, alice, 500, "top-up")  # credits are not usage
    return alice, bob


async def test_usage_by_model_counts_tokens_jobs_and_durations(db: Database) -> None:
    await seed(db)
    groups = await usage.usage(db, START, END, ["model"])
    assert [g["model"] for g in groups] == ["luma", "suno"]
    suno = by(groups, model="suno")
    assert (suno["tokens_debited"], suno["tokens_refunded"], suno["tokens_net"]) == (30, 10, 20)
    assert suno["jobs"] == {"completed": 2, "failed": 1, "canceled": 0}
    # 10 s and 30 s: the 95th percentile lies in the (20, 30] bucket, as histogram_quantile estimates it
    assert suno["duration_mean_seconds"] == 20.0 and suno["duration_p95_seconds"] == 29.0
    luma = by(groups, model="luma")
    # the unfinished job's debit counts; the October job's does not
    assert (luma["tokens_debited"], luma["tokens_refunded"], luma["tokens_net"]) == (60, 30, 30)
    assert luma["jobs"] == {"completed": 0, "failed": 0, "canceled": 1}
    assert luma["duration_mean_seconds"] is None and luma["duration_p95_seconds"] is None


async def test_usage_by_day_and_by_several_dimensions(db: Database) -> None:
    alice, bob = await seed(db)
    days = await usage.usage(db, START, END, ["day"])
    assert [g["day"] for g in days] == ["2026-11-20", "2026-11-21"]
    first, second = days
    # the failed job's refund is written when it finished, on the same day
    assert (first["tokens_debited"], first["tokens_refunded"]) == (20, 10)
    assert first["jobs"] == {"completed": 1, "failed": 1, "canceled": 0}
    assert (second["tokens_debited"], second["tokens_refunded"]) == (70, 30)
    keyed = await usage.usage(db, START, END, ["key", "provider"])
    assert by(keyed, key=alice, provider="suno")["tokens_net"] == 20
    assert by(keyed, key=bob, provider="luma")["tokens_net"] == 30
    per_day_model = await usage.usage(db, START, END, ["day", "model"])
    assert by(per_day_model, day="2026-11-21", model="luma")["tokens_debited"] == 60
    assert by(per_day_model, day="2026-11-21", model="suno")["jobs"]["completed"] == 1
    (total,) = await usage.usage(db, START, END, [])
    assert (total["tokens_debited"], total["tokens_refunded"], total["tokens_net"]) == (90, 40, 50)
    assert sum(total["jobs"].values()) == 4


async def test_p95_is_estimated_from_the_completed_jobs_buckets(db: Database) -> None:
    key = await funded_key(db, 10_000)
    for seconds in range(1, 21):  # 20 durations: the 95th percentile is the 19th, in the (15, 20] bucket
        await finished_job(
            db,
            key,
            model="m",
            provider="p",
            cost=1,
            status="completed",
            created="2026-11-10T10:00:00Z",
            seconds=seconds,
        )
    await finished_job(
        db, key, model="m", provider="p", cost=1, status="failed", created="2026-11-10T10:00:00Z", seconds=500
    )
    (group,) = await usage.usage(db, START, END, ["provider"])
    assert group["duration_p95_seconds"] == 19.0 and group["duration_mean_seconds"] == 10.5


async def test_an_empty_window_has_no_groups_and_zero_totals(db: Database) -> None:
    await seed(db)
    assert await usage.usage(db, "2025-01-01", "2025-02-01", ["day"]) == []
    (total,) = await usage.usage(db, "2025-01-01", "2025-02-01", [])
    assert total["tokens_debited"] == 0 and total["jobs"] == {"completed": 0, "failed": 0, "canceled": 0}


async def test_the_rollup_matches_a_backfill_from_the_ledger_and_the_jobs(db: Database) -> None:
    """What the triggers kept is what the migration computes from the rows of a gateway upgraded to it."""
    await seed(db)
    kept = await usage.usage(db, START, END, ["day", "key", "model", "provider"])
    assert len(kept) == 3  # alice: suno on two days; bob: luma on one

    async def rebuild(tx: Tx) -> None:
        await tx.execute("DELETE FROM usage_daily")
        for statement in backfill("sqlite" if isinstance(db, SqliteDatabase) else "postgresql"):
            await tx.execute(statement)

    await db.write(rebuild)
    assert await usage.usage(db, START, END, ["day", "key", "model", "provider"]) == kept


async def test_a_settled_hold_counts_as_settled_tokens(db: Database) -> None:
    """Migration 6 rebuilds SQLite's ledger (a wider CHECK, for `settle`): the roll-up's trigger on it
    is there again, and counts the settle row as the back-fill does."""
    key = await funded_key(db, 1000)
    with at("2026-11-12T10:00:00Z"):
        job, _ = await jobs.create(db, replace(NewJob(key, "m", "m", "p", "x", "x", None, {}, 50), held=True))
    with at("2026-11-12T10:00:20Z"):
        await jobs.finish(
            db,
            job.id,
            "completed",
            {},
            {"status": "Completed"},
            refund=False,
            settle=Settlement(20, "made 4 s"),
        )
    (group,) = await usage.usage(db, START, END, ["model"])
    assert (group["tokens_debited"], group["tokens_refunded"], group["tokens_settled"]) == (50, 0, 30)
    assert group["tokens_net"] == 20 and group["jobs"]["completed"] == 1
    kept = await usage.usage(db, START, END, ["day", "key", "model", "provider"])

    async def rebuild(tx: Tx) -> None:
        await tx.execute("DELETE FROM usage_daily")
        for statement in backfill("sqlite" if isinstance(db, SqliteDatabase) else "postgresql"):
            await tx.execute(statement)

    await db.write(rebuild)
    assert await usage.usage(db, START, END, ["day", "key", "model", "provider"]) == kept


def test_p95_estimates() -> None:
    assert usage.p95([0] * 23) is None
    only_two_seconds = [0] * 23
    only_two_seconds[1] = 4  # four jobs in (1, 2]: 95 % of the way through that bucket
    assert usage.p95(only_two_seconds) == 1.95
    beyond = [0] * 22 + [3]  # past the last bound: the last bound, as histogram_quantile says
    assert usage.p95(beyond) == 3600.0


async def test_jobs_page_across_keys_with_filters(db: Database) -> None:
    alice, bob = await seed(db)
    everything, total = await usage.jobs_page(db, limit=100)
    assert total == 6 and len(everything) == 6
    assert [j.created_at for j in everything] == sorted((j.created_at for j in everything), reverse=True)
    running, total = await usage.jobs_page(db, statuses=("queued", "processing"))
    assert total == 1 and running[0].key_id == bob and running[0].status == "queued"
    of_alice, total = await usage.jobs_page(db, key_id=alice, provider="suno", statuses=("completed",))
    assert total == 2 and {j.key_id for j in of_alice} == {alice}
    page, total = await usage.jobs_page(db, provider="luma", limit=1, offset=1)
    assert total == 3 and len(page) == 1 and page[0].created_at == "2026-11-21T12:00:00Z"
    assert await usage.jobs_page(db, provider="nobody") == ([], 0)
