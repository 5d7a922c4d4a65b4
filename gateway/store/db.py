"""What every database engine offers the store's operations: whole-transaction writes, reads, time helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import anyio

T = TypeVar("T")

# A result row: both engines' rows answer row["column"] and row[0] (sqlite3.Row, asyncpg.Record).
Row = Any


class Tx(Protocol):
    """One open transaction. SQL is written once, with `?` placeholders, in the dialect both engines share."""

    dialect: str
    """As its database's: "sqlite" or "postgresql"."""

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    async def all(self, sql: str, params: Iterable[Any] = ()) -> Sequence[Row]: ...

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
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
    """"sqlite" or "postgresql": for the few statements one engine can do in fewer round trips."""

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
