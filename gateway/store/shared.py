"""State that replicas share through the database: provider slots, rate-limit windows, singleton locks."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.db import Database, Tx
from gateway.store.records import AccountCap, Place, Row


def take_slot(
    db: Database, job_id: str, epoch: int, provider: str, accounts: Sequence[AccountCap]
) -> Coroutine[Any, Any, Place]:
    """Give the job a slot on the least-loaded of `accounts` (in flight per unit of weight) that is
    under its cap, or tell it its place in the queue.

    Slots are a flag on the job itself (with the account it holds), so a finished job frees its slot
    with no further write, and a job taken over by another replica keeps the account its upstream task
    lives on. The queue is fair across keys: a job's round, fixed when it was created, is one past its
    key's previous unfinished job, and never behind the queue's head; places go by round, then age.
    One provider's takers take turns. Each engine runs it (`Database.take_slot`).
    """
    return db.take_slot(job_id, epoch, provider, accounts)


# Slots held per account ('' for no named account), from the counts the triggers keep.
HELD = "SELECT account, n FROM slots_held WHERE provider = ? AND n > 0"


def by_account(rows: Sequence[Row]) -> dict[str | None, int]:
    return {row["account"] or None: int(row["n"]) for row in rows}


async def give_back_slot(db: Database, job_id: str, epoch: int) -> None:
    """The job's account refused it before the upstream took it: it waits for another account (and
    was surely not submitted: a restart may submit it again)."""

    async def work(tx: Tx) -> None:
        await tx.execute(
            "UPDATE jobs SET has_slot = 0, account = NULL, started_at = NULL, submit_intent_at = NULL"
            " WHERE id = ? AND epoch = ? AND status IN ('queued', 'processing')",
            (job_id, epoch),
        )

    await db.write(work)


@dataclass(frozen=True)
class Load:
    """A provider's jobs in flight per account, and how many wait for a slot (all replicas)."""

    in_flight: dict[str | None, int]
    queued: int


async def provider_load(db: Database, provider: str) -> Load:
    held = await db.fetchall(HELD, (provider,))
    waiting = await db.fetchone(
        "SELECT COUNT(*) FROM jobs WHERE provider = ? AND has_slot = 0 AND status IN ('queued', 'processing')",
        (provider,),
    )
    return Load(by_account(held), int(waiting[0]) if waiting else 0)


def count_request(db: Database, key_id: str, window_start: int) -> Coroutine[Any, Any, int]:
    """Count one request in a key's rate window; the window's count, this one included (on PostgreSQL,
    one statement counts the requests of many at once). Each engine runs it (`Database.count_request`)."""
    return db.count_request(key_id, window_start)


async def requests_counted(db: Database, key_id: str, window_start: int) -> int:
    row = await db.fetchone(
        "SELECT count FROM rate_windows WHERE key_id = ? AND window_start = ?", (key_id, window_start)
    )
    return int(row[0]) if row else 0


async def forget_windows_before(db: Database, window_start: int) -> None:
    async def work(tx: Tx) -> None:
        await tx.execute("DELETE FROM rate_windows WHERE window_start < ?", (window_start,))

    await db.write(work)


async def hold(db: Database, name: str, owner: str, *, now: float, until: float) -> bool:
    """Hold a named lock until `until` (or renew it): True for one replica at a time."""

    async def work(tx: Tx) -> bool:
        row = await tx.one(
            "INSERT INTO singletons (name, owner, until) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until"
            " WHERE singletons.until < ? OR singletons.owner = excluded.owner RETURNING owner",
            (name, owner, until, now),
        )
        return row is not None

    return await db.write(work)
