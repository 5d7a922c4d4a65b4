"""PostgreSQL: the store's operations that each engine runs its own way, in as few round trips as it can.

A create and a slot take run a stored function (postgres/functions.py), many calls in one statement
(postgres/calls.py); progress events, most finishes and quiet streams' looks at the log go many jobs to a
statement (postgres/progress.py), as do requests counted in their rate windows.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from gateway.contract.errors import InsufficientTokens
from gateway.store.db import Work, stamp
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
    as_stored,
    asked,
    finish_in_write,
    first_event,
    held_by,
    reused_idempotency_key,
    too_many_running,
    too_many_waiting,
)
from gateway.store.postgres.calls import Calls, WindowCounts
from gateway.store.postgres.progress import EventHeads, ProgressWrite, ProgressWrites
from gateway.store.records import AccountCap, Place
from gateway.store.slots_schema import counts_locked_first

T = TypeVar("T")

# Stands for the balance in the first event's JSON until the database knows it (no JSON holds a NUL).
_BALANCE_MARK = "\x00balance\x00"

# A refunding or settling finish, a transaction of its own, locks the slot counts it gives back first,
# as every statement does (slots_schema.py).
_JOB_COUNTS, _JOB_COUNTS_TAKEN = counts_locked_first(
    "SELECT provider, COALESCE(account, '') AS account, key_id FROM jobs WHERE id = ? AND has_slot = 1"
)
_COUNTS_FIRST, _COUNTS_TAKEN = f"WITH {_JOB_COUNTS} ", f" AND {_JOB_COUNTS_TAKEN}"


class PostgresOperations(ABC):
    """What `Database` names beyond transactions and reads, for PostgresDatabase (which makes the
    batches below on its pool)."""

    progress: ProgressWrites
    """Progress events, group-committed (see postgres/progress.py)."""
    heads: EventHeads
    """Jobs' last event numbers, read for many jobs at once."""
    creates: Calls
    """Job creates, many in one statement and one commit (see postgres/calls.py)."""
    slot_takes: Calls
    """Slot takes, many in one statement and one commit."""
    window_counts: WindowCounts
    """Requests counted in their keys' rate windows, many in one statement."""

    @abstractmethod
    def write(self, work: Work[T]) -> Coroutine[Any, Any, T]: ...

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
        """Run by the database in one round trip (see postgres/functions.py)."""
        job_id = new_job_id()
        marked = Event(job_id, 1, first_event(job_id, new, _BALANCE_MARK)).json()
        mark = json.dumps(_BALANCE_MARK)
        params = (
            *asked(job_id, new),
            stamp(),
            *held_by(new, lease, lease_seconds),
            marked,
            mark,
            max_concurrent_jobs,
            max_queued_jobs,
            provider_capacity,
            idempotency.key if idempotency else None,
            idempotency.body_hash if idempotency else None,
            cutoff,
        )
        row = await self.creates(params)
        outcome = row["outcome"]
        if outcome == "created":
            balance = int(row["balance_now"])
            first = Event(job_id, 1, first_event(job_id, new, balance))
            return row_to_job(json.loads(row["job"])), first.numbered(1, marked.replace(mark, str(balance)))
        if outcome == "replay":
            return row_to_job(json.loads(row["job"])), None
        if outcome == "idempotency_conflict":
            raise reused_idempotency_key()
        if outcome == "too_many_running":
            raise too_many_running(max_concurrent_jobs)
        if outcome == "too_many_waiting":
            raise too_many_waiting(max_queued_jobs)
        raise InsufficientTokens(new.cost, int(row["balance_now"]))

    async def record_job(
        self, job_id: str, changes: dict[str, Any], event: dict[str, Any] | None, lease: Lease | None
    ) -> Event | None:
        """Group-committed: once or more per job and progress event."""
        epoch = lease.epoch if lease else None
        if event is None:
            if not await self.progress.change(
                ProgressWrite(job_id, epoch, as_stored(changes), None, stamp())
            ):
                raise NotChanged(job_id)
            return None
        unnumbered = Event(job_id, 0, event)
        seq = await self.progress.record(
            ProgressWrite(job_id, epoch, as_stored(changes), unnumbered.json(), stamp())
        )
        if seq is None:
            raise NotChanged(job_id)
        return unnumbered.numbered(seq)

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
        if refund or settle is not None:
            return await finish_in_write(
                self.write,
                job_id,
                changes,
                event,
                refund=refund,
                lease=lease,
                settle=settle,
                head=_COUNTS_FIRST,
                after=_COUNTS_TAKEN,
                counted=(job_id,),
            )
        # The common finish, group-committed with the progress events: the counts a finish keeps at
        # commit (usage, slots held) are rows every finish shares, so one commit for many finishes.
        unnumbered = Event(job_id, 0, event)
        row = await self.progress.finish(
            ProgressWrite(
                job_id,
                lease.epoch if lease else None,
                as_stored(changes),
                unnumbered.json(),
                changes["completed_at"],
                whole=True,
            )
        )
        if row is None:
            return None
        finished = row_to_job(row)
        return Finished(unnumbered.numbered(finished.last_event_id), finished)

    async def take_slot(
        self, job_id: str, epoch: int, provider: str, accounts: Sequence[AccountCap]
    ) -> Place:
        """The same steps as on SQLite, run by the database (see postgres/functions.py)."""
        row = await self.slot_takes(
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

    def count_request(self, key_id: str, window_start: int) -> Coroutine[Any, Any, int]:
        return self.window_counts(key_id, window_start)

    async def moved_past(self, job_id: str, seq: int) -> bool:
        return await self.heads.last(job_id) > seq
