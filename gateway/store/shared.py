"""State that replicas share through the database: provider slots, rate-limit windows, singleton locks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.store.db import Database, Row, Tx, stamp
from gateway.store.postgres import PostgresDatabase


@dataclass(frozen=True)
class AccountCap:
    """An upstream account a job may be given: its cap on jobs in flight and its share of the load."""

    name: str
    limit: int
    weight: float = 1.0


@dataclass(frozen=True)
class Place:
    """0 and the account when the job holds a slot on it; else its place in its provider's queue."""

    position: int
    account: str | None = None


async def take_slot(
    db: Database, job_id: str, epoch: int, provider: str, accounts: Sequence[AccountCap]
) -> Place:
    """Give the job a slot on the least-loaded of `accounts` (in flight per unit of weight) that is
    under its cap, or tell it its place in the queue.

    Slots are a flag on the job itself (with the account it holds), so a finished job frees its slot
    with no further write, and a job taken over by another replica keeps the account its upstream task
    lives on. The queue is fair across keys: a job's round, fixed when it was created, is one past its
    key's previous unfinished job, and never behind the queue's head; places go by round, then age.
    """

    if isinstance(db, PostgresDatabase):  # the same steps, run by the database (see pg_functions.py)
        row = await db.slot_takes(
            (
                job_id,
                epoch,
                provider,
                [a.name for a in accounts],
                [a.limit for a in accounts],
                [float(a.weight) for a in accounts],
                stamp(),
            )
        )
        return Place(int(row["slot_place"]), row["slot_account"])

    async def work(tx: Tx) -> Place:
        # One provider's takers take turns (the upsert holds the lock row until commit on PostgreSQL).
        await tx.execute(
            "INSERT INTO singletons (name, owner, until) VALUES (?, '', 0)"
            " ON CONFLICT (name) DO UPDATE SET until = singletons.until",
            (f"slots:{provider}",),
        )
        job = await tx.one(
            "SELECT has_slot, account, queue_round, created_at, rowid FROM jobs WHERE id = ?", (job_id,)
        )
        if job is None or job["has_slot"]:
            return Place(0, job["account"] if job is not None else None)
        loads = await _loads_in(tx, provider)
        free = [a for a in accounts if loads.get(a.name, 0) < a.limit]
        room = sum(a.limit - loads.get(a.name, 0) for a in free)
        # Counting the jobs ahead first stops at the room there is: a job that fits needs no more.
        place = await _place(tx, provider, job, room) if room else room + 1
        if place > room:
            place = await _place(tx, provider, job, None)
            return Place(place - room)
        chosen = min(free, key=lambda a: (loads.get(a.name, 0) / a.weight, -a.weight, a.name))
        taken = await tx.execute(
            "UPDATE jobs SET has_slot = 1, account = ?, started_at = ?"
            " WHERE id = ? AND epoch = ? AND status IN ('queued', 'processing')",
            (chosen.name, stamp(), job_id, epoch),
        )
        return Place(0, chosen.name) if taken else Place(place)

    return await db.write(work)


async def _place(tx: Tx, provider: str, job: Row, up_to: int | None) -> int:
    """The job's place in its provider's queue (1: first), counting at most `up_to` jobs ahead."""
    ahead = await tx.one(
        "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE provider = ? AND has_slot = 0"
        " AND status IN ('queued', 'processing') AND (queue_round, created_at, rowid) < (?, ?, ?)"
        + (") AS ahead" if up_to is None else " LIMIT ?) AS ahead"),
        (provider, job["queue_round"], job["created_at"], job["rowid"], *([] if up_to is None else [up_to])),
    )
    return int(ahead[0] if ahead else 0) + 1


# Slots held per account ('' for no named account), from the counts the triggers keep.
_HELD = "SELECT account, n FROM slots_held WHERE provider = ? AND n > 0"


def _by_account(rows: Sequence[Row]) -> dict[str | None, int]:
    return {row["account"] or None: int(row["n"]) for row in rows}


async def _loads_in(tx: Tx, provider: str) -> dict[str | None, int]:
    return _by_account(await tx.all(_HELD, (provider,)))


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
    held = await db.fetchall(_HELD, (provider,))
    waiting = await db.fetchone(
        "SELECT COUNT(*) FROM jobs WHERE provider = ? AND has_slot = 0 AND status IN ('queued', 'processing')",
        (provider,),
    )
    return Load(_by_account(held), int(waiting[0]) if waiting else 0)


async def count_request(db: Database, key_id: str, window_start: int) -> int:
    """Count one request in a key's rate window; the window's count, this one included."""
    if isinstance(db, PostgresDatabase):
        return await db.window_counts(key_id, window_start)
    row = await db.write_one(
        "INSERT INTO rate_windows (key_id, window_start, count) VALUES (?, ?, 1)"
        " ON CONFLICT (key_id, window_start) DO UPDATE SET count = rate_windows.count + 1"
        " RETURNING count",
        (key_id, window_start),
    )
    return int(row[0]) if row else 1


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
