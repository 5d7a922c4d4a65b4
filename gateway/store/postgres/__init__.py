"""The PostgreSQL engine (asyncpg): a connection pool, whole-transaction writes, migrations under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import anyio
import asyncpg

from gateway.store import slots_schema, usage_schema
from gateway.store.db import Work, stamp
from gateway.store.ledger import CHANGE, CHANGE_CAPPED, ENTRY
from gateway.store.postgres import functions as pg_functions
from gateway.store.postgres.calls import WindowCounts, creates, slot_takes
from gateway.store.postgres.operations import PostgresOperations
from gateway.store.postgres.progress import EventHeads, ProgressWrites
from gateway.store.records import Reason, Row
from gateway.store.schema import migrations, triggers

log = logging.getLogger("gateway.store")
T = TypeVar("T")

# Any constant both sides agree on: replicas starting at once take turns to migrate.
MIGRATION_LOCK = 0x6761_7465_7761_7900
RETRIES = 3
# A database that stops answering fails the write instead of holding a driver (or a shutdown) forever.
COMMAND_TIMEOUT = 30.0
ACQUIRE_TIMEOUT = 30.0

PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=1024)
def to_dollars(sql: str) -> str:
    """`?` placeholders (the dialect the store writes) as PostgreSQL's `$1, $2, …`."""
    counter = iter(range(1, 10_000))
    return PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _rows_changed(status: str) -> int:
    """asyncpg answers a statement with its command tag: 'UPDATE 3', 'INSERT 0 1', 'DELETE 0'."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


# One statement, one round trip: the key's row stays locked until commit, so every round trip after
# this one keeps the key's other writers waiting.
_ENTERED = f"{ENTRY} SELECT ?, ?, ?, ?, balance, ?, ? FROM changed RETURNING balance_after"
_CHANGED_ENTRY = f"WITH changed AS ({CHANGE}) {_ENTERED}"
_CHANGED_CAPPED_ENTRY = f"WITH changed AS ({CHANGE_CAPPED}) {_ENTERED}"


class PostgresTx:
    __slots__ = ("conn",)
    # A statement's jobs locked in id order before it changes them, as the batched progress writes
    # lock theirs (postgres/progress.py): taken in the order each statement's plan met them, two statements
    # deadlocked. Byte order (COLLATE "C"), as Python sorts a batch of slot takes: a database whose
    # collation is a language's orders `-`, `_` and case otherwise.
    in_id_order = ' ORDER BY id COLLATE "C" FOR NO KEY UPDATE'

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self.conn.fetchrow(to_dollars(sql), *params)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> Sequence[Row]:
        rows: list[Row] = await self.conn.fetch(to_dollars(sql), *params)
        return rows

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        return _rows_changed(await self.conn.execute(to_dollars(sql), *params))

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
        """The change and the ledger's row in one statement."""
        guards: tuple[int, ...]
        if ceiling is None:
            sql, guards = _CHANGED_ENTRY, (delta,)
        else:
            sql, guards = _CHANGED_CAPPED_ENTRY, (delta, delta, ceiling)
        row = await self.conn.fetchrow(
            to_dollars(sql), delta, key_id, *guards, key_id, delta, reason, job_id, note, stamp()
        )
        return None if row is None else int(row[0])


class PostgresDatabase(PostgresOperations):
    """A pool of connections; each write is one READ COMMITTED transaction whose conditional
    statements (the guarded debit, the status and epoch guards) decide under row locks. The store's
    operations that PostgreSQL runs its own way are its base's (postgres/operations.py)."""

    shared = True
    dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 20) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        # The operations' batches (postgres/operations.py), each statement run on its own like `write_one`.
        self.progress = ProgressWrites(self._write_rows)
        self.heads = EventHeads(self.fetchall)
        self.creates = creates(self._write_rows)
        self.slot_takes = slot_takes(self._write_rows)
        self.window_counts = WindowCounts(self._write_rows)

    async def open(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            command_timeout=COMMAND_TIMEOUT,
            reset=_keep_session,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "database is not open"
        return self._pool

    async def write(self, work: Work[T]) -> T:
        # Shielded, as on SQLite: a write always commits or rolls back whole, and its caller learns
        # which. A deadlock (replicas locking a lease's rows in different orders) is tried again:
        # the work is a whole transaction, so running it once more is safe.
        async def whole() -> T:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn, conn.transaction():
                result = await work(PostgresTx(conn))
            return result

        return await self._retried(whole)

    async def write_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        # No BEGIN and COMMIT around it: a lone statement is its own transaction (one round trip
        # instead of three).
        async def lone() -> Row | None:
            return await self.pool.fetchrow(to_dollars(sql), *params)

        return await self._retried(lone)

    async def _write_rows(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One statement in `$n` form, run on its own like `write_one`; all its rows."""

        async def lone() -> list[Row]:
            rows: list[Row] = await self.pool.fetch(sql, *params)
            return rows

        return await self._retried(lone)

    async def _retried(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        with anyio.CancelScope(shield=True):
            for attempt in range(1, RETRIES):
                try:
                    return await attempt_once()
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                    log.info("a write met a deadlock; trying it again (%d)", attempt)
            result = await attempt_once()
        return result

    async def clock(self) -> float:
        """The database's time: every replica measures leases by the same clock."""
        row = await self.fetchone("SELECT extract(epoch from clock_timestamp())::float8")
        return float(row[0]) if row else time.time()

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self.pool.fetchrow(to_dollars(sql), *params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(to_dollars(sql), *params)
        return rows

    async def ping(self) -> bool:
        return await self.fetchone("SELECT 1") is not None


def functions() -> str:
    """The stored functions as they stand (CREATE OR REPLACE); the triggers' first."""
    return usage_schema.FUNCTIONS + slots_schema.FUNCTION + pg_functions.FUNCTIONS


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool runs on a connection handed back: nothing. The store never changes session state
    (no SET, LISTEN or temporary tables) and always ends its transactions, and asyncpg's default reset
    was a round trip per query (a tenth of the event loop's time under load, py-spy)."""


async def migrate(conn: asyncpg.Connection, upto: int | None = None) -> int:
    """Apply the migrations not yet applied (up to `upto`, for tests: all), one transaction each, then,
    at the last version, the repeatable step; the advisory lock makes replicas that start together take
    turns, so each migration runs once. Returns the schema version."""
    scripts = migrations("postgresql")
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        version = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
        for number, script in enumerate(scripts[version:upto], start=version + 1):
            log.info("applying migration %d", number)
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now()::text)", number
                )
            version = number
        if version == len(scripts):  # the current source is written for the current schema
            async with conn.transaction():
                await _repeatable(conn)
        return version
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def _repeatable(conn: asyncpg.Connection) -> None:
    """The stored functions and triggers as their source stands. A function is replaced in place (no
    table lock); a trigger is made again only when its statement changed, as its comment records:
    dropping one locks its table, and other replicas are writing to it."""
    await conn.execute(functions())
    for trigger in triggers("postgresql"):
        made = f"sha256:{hashlib.sha256(trigger.create.encode()).hexdigest()}"
        found = await conn.fetchval(
            "SELECT obj_description(t.oid, 'pg_trigger') FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE t.tgname = $1 AND c.relname = $2 AND c.relnamespace = current_schema()::regnamespace",
            trigger.name,
            trigger.table,
        )
        if found != made:
            log.info("making trigger %s again", trigger.name)
            await conn.execute(f"DROP TRIGGER IF EXISTS {trigger.name} ON {trigger.table}")
            await conn.execute(trigger.create)
            await conn.execute(f"COMMENT ON TRIGGER {trigger.name} ON {trigger.table} IS '{made}'")
