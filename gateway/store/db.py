"""What every database engine offers the store's operations: whole-transaction writes, reads, the
operations each engine runs its own way, time helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import anyio

from gateway.store.event_records import Event
from gateway.store.job_records import Finished, Idempotency, Job, Lease, NewJob, Settlement
from gateway.store.records import AccountCap, Place, Reason, Row

T = TypeVar("T")


class Tx(Protocol):
    """One open transaction. SQL is written once, with `?` placeholders, in the dialect both engines
    share; what one engine writes otherwise, the engine's transaction says."""

    in_id_order: str
    """What ends a subquery choosing the jobs a statement changes, so that every statement locks jobs
    in one order (on PostgreSQL: in id order, as the batched progress writes do; nothing on SQLite,
    whose one writer holds the whole database)."""

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    async def all(self, sql: str, params: Iterable[Any] = ()) -> Sequence[Row]: ...

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def append_entry(
        self,
        key_id: str,
        delta: int,
        reason: Reason,
        *,
        job_id: str | None = None,
        note: str | None = None,
        ceiling: int | None = None,
    ) -> int | None:
        """Apply `delta` to the key's balance and record it in the ledger (see `ledger.append_entry`)."""
        ...


Work = Callable[[Tx], Coroutine[Any, Any, T]]


async def committed(done: asyncio.Future[T]) -> T:
    """The answer of a write already on its way, which its caller learns even if cancelled meanwhile
    (its cancel scope cancels it again at its next await).

    asyncio.shield: cancelling the caller never cancels the future its batch answers. A cancel scope
    of its own is made only once cancelled: one per write cost more than the commit (py-spy).
    """
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            answer = await asyncio.shield(done)
        return answer


class Database(Protocol):
    """The store's engine: SQLite in the data dir (one process) or PostgreSQL (shared by replicas).

    A write is one function run whole as a transaction: it commits or rolls back as a unit, whatever
    happens to the task that asked for it.
    """

    shared: bool
    """True when other processes may use the same database at once (replicas)."""

    dialect: str
    """"sqlite" or "postgresql": the engine's name, for its migrations. A statement that differs by
    engine is never chosen by it: the engine runs the operation (below) or gives its text (`Tx`)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, work: Work[T]) -> T: ...

    async def write_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """One statement, run as a write of its own (atomic; committed or not as a unit, as `write`);
        its first row. On PostgreSQL, one round trip."""
        ...

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]: ...

    async def clock(self) -> float:
        """Seconds since the epoch by the database's clock, which leases are measured by."""
        ...

    async def ping(self) -> bool: ...

    # The operations each engine runs its own way (sqlite/operations.py, postgres/operations.py): on PostgreSQL many calls
    # share one statement and one commit, or a stored function decides in one round trip. Each is
    # called through its store module (jobs, shared, events), which says what it does and hands its
    # caller the engine's coroutine: no coroutine of its own in between, on paths run once or more
    # per job (py-spy counted every frame).

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
        """`jobs.create`, its idempotency records older than `cutoff` stale."""
        ...

    async def record_job(
        self, job_id: str, changes: dict[str, Any], event: dict[str, Any] | None, lease: Lease | None
    ) -> Event | None:
        """`jobs.record`, `changes` stamped."""
        ...

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
        """`jobs.finish`, `changes` holding the status, the stamps, the refund flag and the settled cost."""
        ...

    async def take_slot(
        self, job_id: str, epoch: int, provider: str, accounts: Sequence[AccountCap]
    ) -> Place:
        """`shared.take_slot`."""
        ...

    async def count_request(self, key_id: str, window_start: int) -> int:
        """`shared.count_request`."""
        ...

    async def moved_past(self, job_id: str, seq: int) -> bool:
        """`events.moved_past`."""
        ...


def now() -> datetime:
    return datetime.now(UTC)


_stamp: tuple[int, str] = (0, "")


def stamp() -> str:
    """Now as `iso` writes it, made once a second: every write of a job stamps it."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, iso(datetime.fromtimestamp(second, UTC)) or "")
    return _stamp[1]


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, as the contract writes times."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
