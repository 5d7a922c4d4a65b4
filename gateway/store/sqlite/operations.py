"""SQLite: the store's operations that each engine runs its own way, as the writer's transactions.

On SQLite every write is a transaction queued for the one writer, which commits a turn's writes
together (sqlite.py): an operation here is one such write, its statements costing no round trip.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from gateway.contract.errors import InsufficientTokens
from gateway.store import events
from gateway.store.db import Tx, Work, stamp
from gateway.store.event_records import Event
from gateway.store.job_records import (
    Finished,
    Idempotency,
    Job,
    Lease,
    NewJob,
    Settlement,
    new_job_id,
    row_to_job,
)
from gateway.store.jobs import (
    NotChanged,
    asked,
    assignments,
    finish_in_write,
    first_event,
    get_in,
    held_by,
    reused_idempotency_key,
    too_many_running,
    too_many_waiting,
    unfinished_where,
)
from gateway.store.records import AccountCap, Place, Row
from gateway.store.shared import HELD, by_account
from gateway.store.slots_schema import NEXT_ROUND

T = TypeVar("T")

# A new job, born with its first event's number and its round in its provider's queue (the expression
# PostgreSQL's create_job runs too).
_INSERT_JOB = (
    "INSERT INTO jobs (id, key_id, model, served_model, provider, prompt, effective_prompt, style,"
    " options, callback_url, status, cost, created_at, updated_at, owner, epoch, lease_until,"
    " last_event_id, hold, queue_round)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, 1, ?, "
    + NEXT_ROUND.format(key="?", provider="?")
    + ") RETURNING *"
)


class SqliteOperations(ABC):
    """What `Database` names beyond transactions and reads, for SqliteDatabase (which runs the writes)."""

    __slots__ = ()

    @abstractmethod
    def write(self, work: Work[T]) -> Coroutine[Any, Any, T]: ...

    @abstractmethod
    def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Coroutine[Any, Any, Row | None]: ...

    async def create_job(
        self,
        new: NewJob,
        *,
        idempotency: Idempotency | None,
        cutoff: str | None,
        max_concurrent_jobs: int | None,
        max_queued_jobs: int | None,
        provider_capacity: int | None,
        lease: Lease | None,
        lease_seconds: float,
    ) -> tuple[Job, Event | None]:
        async def work(tx: Tx) -> tuple[Job, Event | None]:
            if idempotency is not None:
                # The key's row first, as PostgreSQL's create_job takes its lock to serialise one key's
                # creates, so the check sees every earlier create with the same Idempotency-Key
                # (SQLite's BEGIN IMMEDIATE serialises every write anyway).
                await tx.execute("UPDATE api_keys SET balance = balance WHERE id = ?", (new.key_id,))
                seen = await tx.one(
                    "SELECT body_hash, job_id FROM idempotency WHERE key_id = ? AND idem_key = ? AND created_at > ?",
                    (new.key_id, idempotency.key, cutoff),
                )
                if seen is not None:
                    if seen["body_hash"] != idempotency.body_hash:
                        raise reused_idempotency_key()
                    return await get_in(tx, seen["job_id"]), None
            job_id = new_job_id()
            created = stamp()
            # The job first, born with its first event's number, then the debit: the debit takes the key's
            # row lock (the job's foreign key does not), so one key's creates queue for as few round trips
            # as possible, and the count below runs under the lock, where it sees every committed job.
            row = await tx.one(
                _INSERT_JOB,
                (
                    *asked(job_id, new),
                    created,
                    created,
                    *held_by(new, lease, time.time() + lease_seconds),
                    new.key_id,
                    new.provider,
                    new.provider,
                ),
            )
            assert row is not None
            balance = await tx.append_entry(new.key_id, -new.cost, "debit", job_id=job_id)
            if max_concurrent_jobs is not None or max_queued_jobs is not None:
                counts = await tx.one(
                    "SELECT COALESCE((SELECT n FROM slots_held_by_key WHERE key_id = ?), 0) AS held,"
                    " (SELECT COUNT(*) FROM jobs WHERE key_id = ? AND has_slot = 0"
                    " AND status IN ('queued', 'processing')) AS waiting",
                    (new.key_id, new.key_id),
                )
                assert counts is not None  # this job is one of the waiting
                if (
                    max_concurrent_jobs is not None
                    and int(counts["held"]) + int(counts["waiting"]) > max_concurrent_jobs
                ):
                    raise too_many_running(max_concurrent_jobs)
                waiting = int(counts["waiting"])
                if (
                    max_queued_jobs is not None
                    and waiting > max_queued_jobs
                    and provider_capacity is not None
                ):
                    # A job counts as waiting from its creation until its driver takes a slot: in a burst,
                    # most of them will find a free one. Only those beyond the provider's free slots queue.
                    held = await tx.one(
                        "SELECT COALESCE(SUM(n), 0) FROM slots_held WHERE provider = ?", (new.provider,)
                    )
                    waiting -= max(0, provider_capacity - (int(held[0]) if held else 0))
                if max_queued_jobs is not None and waiting > max_queued_jobs:
                    raise too_many_waiting(max_queued_jobs)
            if balance is None:
                current = await tx.one("SELECT balance FROM api_keys WHERE id = ?", (new.key_id,))
                raise InsufficientTokens(new.cost, int(current[0]) if current else 0)
            first = await events.store(tx, job_id, 1, first_event(job_id, new, balance))
            if idempotency is not None:  # a stale record (past the TTL) is replaced
                await tx.execute(
                    "INSERT INTO idempotency (key_id, idem_key, body_hash, job_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, idem_key) DO UPDATE SET"
                    " body_hash = excluded.body_hash, job_id = excluded.job_id, created_at = excluded.created_at",
                    (new.key_id, idempotency.key, idempotency.body_hash, job_id, created),
                )
            return row_to_job(row), first  # as inserted: nothing in it changed since

        return await self.write(work)

    async def record_job(
        self, job_id: str, changes: dict[str, Any], event: dict[str, Any] | None, lease: Lease | None
    ) -> Event | None:
        sets, values = assignments(changes)
        where, guard = unfinished_where(job_id, lease)

        async def work(tx: Tx) -> Event | None:
            if event is None:
                if await tx.execute(f"UPDATE jobs SET {sets} WHERE {where}", (*values, *guard)) == 0:
                    raise NotChanged(job_id)
                return None
            # The change and the event's number in one statement: this runs once per progress event.
            row = await tx.one(
                f"UPDATE jobs SET {sets}, last_event_id = last_event_id + 1 WHERE {where} RETURNING last_event_id",
                (*values, *guard),
            )
            if row is None:
                raise NotChanged(job_id)
            return await events.store(tx, job_id, int(row[0]), event)

        return await self.write(work)

    async def finish_job(
        self,
        job_id: str,
        changes: dict[str, Any],
        event: dict[str, Any],
        *,
        refund: bool,
        lease: Lease | None,
        settle: Settlement | None,
    ) -> Finished | None:
        return await finish_in_write(
            self.write, job_id, changes, event, refund=refund, lease=lease, settle=settle
        )

    async def take_slot(
        self, job_id: str, epoch: int, provider: str, accounts: Sequence[AccountCap]
    ) -> Place:
        async def work(tx: Tx) -> Place:
            # One provider's takers take turns on its lock row, as in PostgreSQL's take_slot (there
            # the upsert holds it until commit; here the writer holds the whole database).
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

        return await self.write(work)

    async def count_request(self, key_id: str, window_start: int) -> int:
        async def work(tx: Tx) -> int:
            row = await tx.one(
                "INSERT INTO rate_windows (key_id, window_start, count) VALUES (?, ?, 1)"
                " ON CONFLICT (key_id, window_start) DO UPDATE SET count = rate_windows.count + 1"
                " RETURNING count",
                (key_id, window_start),
            )
            return int(row[0]) if row else 1

        return await self.write(work)

    async def moved_past(self, job_id: str, seq: int) -> bool:
        row = await self.fetchone("SELECT last_event_id FROM jobs WHERE id = ?", (job_id,))
        return row is not None and int(row[0]) > seq


async def _place(tx: Tx, provider: str, job: Row, up_to: int | None) -> int:
    """The job's place in its provider's queue (1: first), counting at most `up_to` jobs ahead."""
    ahead = await tx.one(
        "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE provider = ? AND has_slot = 0"
        " AND status IN ('queued', 'processing') AND (queue_round, created_at, rowid) < (?, ?, ?)"
        + (") AS ahead" if up_to is None else " LIMIT ?) AS ahead"),
        (provider, job["queue_round"], job["created_at"], job["rowid"], *([] if up_to is None else [up_to])),
    )
    return int(ahead[0] if ahead else 0) + 1


async def _loads_in(tx: Tx, provider: str) -> dict[str | None, int]:
    return by_account(await tx.all(HELD, (provider,)))
