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

from gateway.store.db import Tx, Work, committed, stamp
from gateway.store.ledger import CHANGE, CHANGE_CAPPED, ENTRY
from gateway.store.records import Reason, Row
from gateway.store.schema import migrations, triggers
from gateway.store.sqlite.operations import SqliteOperations

log = logging.getLogger("gateway.store")

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # WAL + NORMAL survives a process crash (SIGKILL)
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
BUSY_TIMEOUT_MS = 5000
CHECKPOINT_COMMITS = 200  # about what the automatic checkpoint after 1 000 WAL pages would do here
T = TypeVar("T")

_ENTRY_VALUES = f"{ENTRY} VALUES (?, ?, ?, ?, ?, ?, ?)"


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
    in_id_order = ""  # one writer: a statement's locks are the whole database's

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return self.conn.execute(sql, tuple(params)).fetchone()

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount

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
        """The change, then the ledger's row with the balance it left (statements cost no round trip here)."""
        if ceiling is None:
            row = self.conn.execute(CHANGE, (delta, key_id, delta)).fetchone()
        else:
            row = self.conn.execute(CHANGE_CAPPED, (delta, key_id, delta, delta, ceiling)).fetchone()
        if row is None:
            return None
        balance = int(row[0])
        self.conn.execute(_ENTRY_VALUES, (key_id, delta, reason, job_id, balance, note, stamp()))
        return balance


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


def _commit_begun(conn: sqlite3.Connection, batch: list[_Pending]) -> None:
    """Run the batch in the transaction just begun and commit it; on a failure each caller hears it."""
    try:
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


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply the migrations not yet applied (up to `upto`, for tests: all), one transaction each, then,
    at the last version, the repeatable step. Returns the schema version."""
    scripts = migrations("sqlite")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, script in enumerate(scripts[version:upto], start=version + 1):
        log.info("applying migration %d", number)
        conn.executescript(f"BEGIN;\n{script}\n;PRAGMA user_version = {number}; COMMIT;")
        version = number
    if version == len(scripts):  # the current source is written for the current schema
        # the triggers as their source stands (one writer: dropping them is cheap)
        remade = "".join(f"DROP TRIGGER IF EXISTS {t.name};\n{t.create}\n" for t in triggers("sqlite"))
        conn.executescript(f"BEGIN;\n{remade}COMMIT;")
    return version


class SqliteDatabase(SqliteOperations):
    """Writes run as whole transactions on the event loop's own thread, grouped; reads go through
    aiosqlite (WAL).

    A write is a function of a transaction, run between BEGIN IMMEDIATE and COMMIT, always to the end,
    so a cancelled caller can never leave a transaction half-open. The writes queued in one turn of
    the event loop commit together, inline: in WAL mode with synchronous=NORMAL a commit hands its
    pages to the OS and does not fsync (it still survives a killed process), so it costs tens of
    microseconds — less than handing it to a thread, whose hop and the GIL passed back and forth
    around every statement were the largest measured cost. What could block the loop stays off it:
    another process holding the write lock (the batch then goes to a thread that waits up to
    busy_timeout) and checkpoints (automatic ones are off; a thread runs a passive one every
    CHECKPOINT_COMMITS commits).

    The store's operations that each engine runs its own way are its base's (sqlite/operations.py).
    """

    shared = False
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        # For what may wait: opening, closing, a batch that found the database locked, checkpoints.
        self._executor: ThreadPoolExecutor | None = None
        self._queue: list[_Pending] = []
        self._next_done: asyncio.Future[None] | None = None
        self._flushing = False  # a flush is scheduled, or a batch is on the thread
        self._commits = 0
        self._checkpointing = False
        self._writer: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None  # its own connection, used on the thread
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._executor, self._open_writer)
        self._checkpointer = await loop.run_in_executor(self._executor, self._connect)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = aiosqlite.Row
        for pragma in PRAGMAS:
            await self._reader.execute(pragma)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            conn.execute(pragma)
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        migrate(conn)
        conn.execute("PRAGMA busy_timeout=0")  # on the loop: never wait for a lock there
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run on the thread (_checkpoint)
        return conn

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            for conn in (self._checkpointer, self._writer):  # after any batch or checkpoint on the thread
                if conn is not None:
                    await loop.run_in_executor(self._executor, conn.close)
            self._executor.shutdown(wait=False)
        self._reader = self._writer = self._checkpointer = self._executor = None

    async def write_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async def work(tx: Tx) -> Row | None:
            return await tx.one(sql, params)

        return await self.write(work)

    async def write(self, work: Work[T]) -> T:
        """Run `work` atomically and durably, as if in a transaction of its own.

        Writes that arrive in the same turn of the event loop are committed together (group commit).
        Should one of them raise, the batch runs again with each write under its own SAVEPOINT, so
        that one is rolled back alone and its caller gets the error.
        """
        loop = asyncio.get_running_loop()
        if self._next_done is None:
            self._next_done = loop.create_future()
        pending = _Pending(work, self._next_done)
        self._queue.append(pending)
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        if not pending.done.done():
            await committed(pending.done)  # cancelled meanwhile, it still learns what was committed
        if pending.error is not None:
            raise pending.error
        return cast(T, pending.result)

    def _flush(self) -> None:
        """Commit the queued writes as one batch, here on the loop unless the database is locked."""
        conn = self._writer
        assert conn is not None and self._executor is not None, "database is not open"
        batch, done = self._queue, self._next_done
        self._queue, self._next_done = [], None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            # Another process holds the write lock: wait for it on the thread, not on the loop.
            waiting = asyncio.get_running_loop().run_in_executor(self._executor, self._commit_waiting, batch)
            waiting.add_done_callback(lambda _: self._batch_done(done))
            return
        _commit_begun(conn, batch)
        self._batch_done(done)
        self._commits += 1
        if self._commits >= CHECKPOINT_COMMITS and not self._checkpointing:
            self._commits, self._checkpointing = 0, True
            checkpoint = asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
            checkpoint.add_done_callback(self._checkpointed)

    def _batch_done(self, done: asyncio.Future[None] | None) -> None:
        if done is not None and not done.done():  # every caller of the batch is told, whatever happened
            done.set_result(None)
        if self._queue:  # queued while the batch was on the thread
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._flushing = False

    def _commit_waiting(self, batch: list[_Pending]) -> None:
        """On the thread: the batch, waiting up to busy_timeout for the write lock."""
        conn = self._writer
        assert conn is not None
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            try:
                conn.execute(
                    "BEGIN IMMEDIATE"
                )  # may fail (locked past busy_timeout, disk): each caller hears it
            except Exception as exc:
                for item in batch:
                    item.error = exc
                return
            _commit_begun(conn, batch)
        finally:
            conn.execute("PRAGMA busy_timeout=0")

    def _checkpoint(self) -> None:
        conn = self._checkpointer
        if conn is not None:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = False
        if not done.cancelled() and done.exception() is not None:
            log.warning("checkpoint failed: %s", done.exception())

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
