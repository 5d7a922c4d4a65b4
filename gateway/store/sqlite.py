"""The SQLite engine: one writer thread running whole transactions, one reader, WAL, versioned migrations."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
import anyio

from gateway.store.db import Row, Work
from gateway.store.schema import migrations

log = logging.getLogger("gateway.store")

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # WAL + NORMAL survives a process crash (SIGKILL)
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
T = TypeVar("T")


class _Pending:
    """One write waiting for the writer: its work, then its result or error."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Work[Any], done: asyncio.Future[None]) -> None:
        self.work = work
        self.done = done  # shared by every write of the same batch: one future per commit, not per write
        self.result: Any = None
        self.error: Exception | None = None


class SqliteTx:
    """A transaction on the writer's connection. Its methods never suspend, so a write's coroutine
    runs to the end in one `send` inside the writer thread (see `_run_whole`)."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return self.conn.execute(sql, tuple(params)).fetchone()

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount


def _run_whole(coro: Coroutine[Any, Any, T]) -> T:
    """Run a write's coroutine to its end without an event loop: its awaits are all SqliteTx calls."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("a store write awaited something other than its transaction")


def _run_unguarded(conn: sqlite3.Connection, batch: list[_Pending]) -> Exception | None:
    """Every write of the batch in one transaction, no savepoints (the common case: none fails);
    the first error, if one does."""
    for item in batch:
        try:
            item.result = _run_whole(item.work(SqliteTx(conn)))
        except Exception as exc:
            return exc
    return None


def _run_guarded(conn: sqlite3.Connection, batch: list[_Pending]) -> None:
    for item in batch:
        item.result = None
        conn.execute("SAVEPOINT work")
        try:
            item.result = _run_whole(item.work(SqliteTx(conn)))
        except Exception as exc:
            conn.execute("ROLLBACK TO work")
            item.error = exc
        conn.execute("RELEASE work")


class SqliteDatabase:
    """Writes run as whole transactions in one worker-thread call; reads go through aiosqlite (WAL).

    A write is a function of a transaction, run between BEGIN IMMEDIATE and COMMIT in the database's
    single writer thread: one hop per transaction instead of one per statement (the per-statement
    hops were the gateway's largest measured cost), and a cancelled caller can never leave a
    transaction half-open, because the function always runs to COMMIT or ROLLBACK.
    """

    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        # The writer: one thread of its own, fed batch by batch from the event loop.
        self._executor: ThreadPoolExecutor | None = None
        self._queue: list[_Pending] = []
        self._next_done: asyncio.Future[None] | None = None
        self._flushing = False
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writer = await asyncio.get_running_loop().run_in_executor(self._executor, self._open_writer)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = aiosqlite.Row
        for pragma in PRAGMAS:
            await self._reader.execute(pragma)

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            conn.execute(pragma)
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for number, script in enumerate(migrations("sqlite")[version:], start=version + 1):
            log.info("applying migration %d", number)
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        return conn

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._executor is not None:
            if self._writer is not None:  # after any batch still in the writer's hands
                await asyncio.get_running_loop().run_in_executor(self._executor, self._writer.close)
            self._executor.shutdown(wait=False)
        self._reader = self._writer = self._executor = None

    async def write(self, work: Work[T]) -> T:
        """Run `work` atomically and durably, as if in a transaction of its own.

        Writes that arrive while one is running are committed together (group commit). Should one of
        them raise, the batch runs again with each write under its own SAVEPOINT, so that one is
        rolled back alone and its caller gets the error. The batches are handed to the writer thread
        by callbacks, not by a caller's task, so a cancelled caller never holds the others up.
        """
        if self._next_done is None:
            self._next_done = asyncio.get_running_loop().create_future()
        pending = _Pending(work, self._next_done)
        self._queue.append(pending)
        if not self._flushing:
            self._flush()
        if not pending.done.done():
            # The caller always learns what was committed; asyncio.shield keeps a native cancel of
            # this task from cancelling the future the rest of the batch waits on.
            with anyio.CancelScope(shield=True):
                await asyncio.shield(pending.done)
        if pending.error is not None:
            raise pending.error
        return cast(T, pending.result)

    def _flush(self) -> None:
        """Hand the queued writes to the writer thread as one batch; the next batch follows when it is done."""
        assert self._executor is not None, "database is not open"
        batch, done = self._queue, self._next_done
        self._queue, self._next_done = [], None
        self._flushing = True
        committing = asyncio.get_running_loop().run_in_executor(self._executor, self._commit_batch, batch)
        committing.add_done_callback(lambda _: self._batch_done(done))

    def _batch_done(self, done: asyncio.Future[None] | None) -> None:
        if done is not None and not done.done():  # every caller of the batch is told, whatever happened
            done.set_result(None)
        if self._queue:
            self._flush()
        else:
            self._flushing = False

    def _commit_batch(self, batch: list[_Pending]) -> None:
        conn = self._writer
        assert conn is not None, "database is not open"
        try:
            conn.execute("BEGIN IMMEDIATE")  # may fail (locked past busy_timeout, disk): each caller hears it
            failed = _run_unguarded(conn, batch)
            if failed is not None:
                conn.execute("ROLLBACK")
                if len(batch) == 1:
                    batch[0].error = failed
                    return
                # One write of the batch failed: run them all again, each under its own savepoint,
                # so it alone is rolled back (a write is a whole transaction: running it again is safe).
                conn.execute("BEGIN IMMEDIATE")
                _run_guarded(conn, batch)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for item in batch:
                item.error = item.error or (exc if isinstance(exc, Exception) else RuntimeError(str(exc)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """One round trip to the reader's thread (execute + fetch + close would be three)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        assert self._reader is not None, "database is not open"
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def clock(self) -> float:
        return time.time()  # one process, one clock

    async def ping(self) -> bool:
        return await self.fetchone("SELECT 1") is not None
