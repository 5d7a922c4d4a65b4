"""The SQLite connection pair (one writer under a lock, one reader), WAL, and versioned migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

log = logging.getLogger("gateway.store")

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
        models TEXT,
        rate_limit_per_minute INTEGER,
        max_concurrent_jobs INTEGER,
        revoked_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        delta INTEGER NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('debit', 'refund', 'credit', 'adjust')),
        job_id TEXT,
        balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
        note TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX ledger_by_key ON ledger (key_id, id);
    -- A job is debited at most once and refunded at most once: the schema says so, not only the code.
    CREATE UNIQUE INDEX ledger_one_debit_per_job ON ledger (job_id) WHERE reason = 'debit';
    CREATE UNIQUE INDEX ledger_one_refund_per_job ON ledger (job_id) WHERE reason = 'refund';
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        model TEXT NOT NULL,
        served_model TEXT NOT NULL,
        provider TEXT NOT NULL,
        prompt TEXT NOT NULL,
        effective_prompt TEXT NOT NULL,
        style TEXT,
        options TEXT NOT NULL,
        callback_url TEXT,
        status TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'canceled')),
        progress INTEGER,
        cost INTEGER NOT NULL,
        refunded INTEGER NOT NULL DEFAULT 0,
        url TEXT,
        urls TEXT,
        content_type TEXT,
        error TEXT,
        error_code TEXT,
        upstream_id TEXT,
        last_event_id INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        completed_at TEXT,
        expires_at TEXT,
        files_deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_key ON jobs (key_id, created_at DESC);
    CREATE INDEX jobs_unfinished ON jobs (status) WHERE status IN ('queued', 'processing');
    CREATE TABLE job_events (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        seq INTEGER NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE idempotency (
        key_id TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        job_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (key_id, idem_key)
    );
    CREATE TABLE webhook_deliveries (
        job_id TEXT PRIMARY KEY REFERENCES jobs(id),
        url TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered_at TEXT,
        last_error TEXT
    );
    """,
]


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, as the contract writes times."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class Database:
    """A writer connection whose transactions are serialised by a lock, and a reader beside it (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = anyio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await self._migrate(self._writer)
        self._reader = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",  # WAL + NORMAL survives a process crash (SIGKILL)
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
        ):
            await conn.execute(pragma)
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("applying migration %d", number)
            await conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT on the writer; ROLLBACK on any error, cancellation included."""
        assert self._writer is not None, "database is not open"
        async with self._lock:
            conn = self._writer
            # BEGIN runs in the database thread even if this task is cancelled while it waits, so it
            # is shielded: otherwise a cancelled BEGIN would leave a transaction open with no owner.
            with anyio.CancelScope(shield=True):
                await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await conn.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                try:
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                    raise

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        assert self._reader is not None, "database is not open"
        return await fetchone(self._reader, sql, params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        assert self._reader is not None, "database is not open"
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def ping(self) -> bool:
        return await self.fetchone("SELECT 1") is not None


async def fetchone(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
    """One round trip to the database thread (execute + fetch + close would be three)."""
    rows = list(await conn.execute_fetchall(sql, tuple(params)))
    return rows[0] if rows else None
