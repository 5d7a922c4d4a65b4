"""Migrations on both engines: the files never change, any path of upgrades ends in a fresh database's
schema, and an old deployment (made before migrations 3, 7 and 8 were edited) upgrades with its data."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.store import jobs, ledger
from gateway.store.db import Database
from gateway.store.job_records import NewJob
from gateway.store.postgres import PostgresDatabase, to_dollars
from gateway.store.postgres import migrate as postgres_migrate
from gateway.store.schema import migrations
from gateway.store.sqlite import SqliteDatabase
from gateway.store.sqlite import migrate as sqlite_migrate
from tests.conftest import POSTGRES_ADMIN_URL
from tests.gateway.schema_snapshot import assert_same_schema, postgres_schema, sqlite_schema

pytestmark = pytest.mark.anyio

MIGRATIONS_DIR = Path(__file__).parents[2] / "gateway" / "store" / "migrations"
FIXTURES = Path(__file__).parent / "migration_fixtures"
LAST = len(migrations("sqlite"))
# The texts an old deployment ran, from git history: (migration, commit of main that had it).
OLD_TEXTS = {3: "86f2a1f", 7: "233548e", 8: "5ab3ed8"}
TABLES = (
    "api_keys",
    "ledger",
    "jobs",
    "job_events",
    "idempotency",
    "webhook_deliveries",
    "usage_daily",
    "slots_held",
    "slots_held_by_key",
)


class Target:
    """A database to migrate by hand (as an older gateway did) and then start as today's does."""

    dialect: str

    async def apply(self, number: int, script: str) -> None:
        """One migration's text, run as the runner runs it, recording the version."""
        raise NotImplementedError

    async def start_up(self, upto: int | None = None) -> int:
        """One start-up of today's runner (to `upto` only, if given); the version it leaves."""
        raise NotImplementedError

    async def run(self, sql: str, *params: Any) -> None:
        raise NotImplementedError

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def database(self) -> Database:
        raise NotImplementedError

    async def schema(self) -> dict[str, str]:
        raise NotImplementedError


class SqliteTarget(Target):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def apply(self, number: int, script: str) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.executescript(f"BEGIN;\n{script}\n;PRAGMA user_version = {number}; COMMIT;")
        finally:
            conn.close()

    async def start_up(self, upto: int | None = None) -> int:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            return sqlite_migrate(conn, upto)
        finally:
            conn.close()

    async def run(self, sql: str, *params: Any) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute(sql, params)
        finally:
            conn.close()

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.path)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(sql)]
        finally:
            conn.close()

    def database(self) -> Database:
        return SqliteDatabase(self.path)

    async def schema(self) -> dict[str, str]:
        return sqlite_schema(self.path)


class PostgresTarget(Target):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    async def apply(self, number: int, script: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, now()::text)", number)
        finally:
            await conn.close()

    async def start_up(self, upto: int | None = None) -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return await postgres_migrate(conn, upto)
        finally:
            await conn.close()

    async def run(self, sql: str, *params: Any) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(to_dollars(sql), *params)
        finally:
            await conn.close()

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.url)
        try:
            return [dict(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    def database(self) -> Database:
        return PostgresDatabase(self.url, min_size=1, max_size=2)

    async def schema(self) -> dict[str, str]:
        return await postgres_schema(self.url)


@asynccontextmanager
async def target(engine: str, tmp_path: Path, name: str) -> AsyncIterator[Target]:
    """An empty database: a SQLite file, or a PostgreSQL database of its own (dropped after)."""
    if engine == "sqlite":
        yield SqliteTarget(tmp_path / f"{name}.sqlite3")
        return
    database = f"gw_test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable ({exc})")
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        try:
            yield PostgresTarget(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + database)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


async def fresh_schema(engine: str, tmp_path: Path) -> dict[str, str]:
    """The schema today's start-up gives an empty database."""
    async with target(engine, tmp_path, "fresh") as fresh:
        db = fresh.database()
        await db.open()
        await db.close()
        return await fresh.schema()


async def start(db_target: Target) -> Database:
    db = db_target.database()
    await db.open()
    return db


def old_text(number: int, dialect: str) -> str:
    """Migration `number` as an old deployment ran it: the historical text kept here if there is one."""
    if number in OLD_TEXTS:
        kept = FIXTURES / f"{number:04d}-at-{OLD_TEXTS[number]}.{dialect}.sql"
        if kept.exists():  # migration 8 did nothing on SQLite, then as now
            return kept.read_text()
    return migrations(dialect)[number - 1]  # type: ignore[arg-type]


# The data an old deployment holds: two keys with their ledgers, jobs in every state (one holding a
# slot, one with a callback delivered), events, an idempotency record; the triggers fill the usage
# roll-up and the slot counts as the jobs change.
CREATED = "2026-11-23T10:00:00+00:00"
DONE = "2026-11-23T10:00:42+00:00"
KEY = "INSERT INTO api_keys (id, name, key_hash, prefix, balance, created_at) VALUES (?, ?, ?, ?, ?, ?)"
LEDGER = (
    "INSERT INTO ledger (key_id, delta, reason, job_id, balance_after, created_at) VALUES (?, ?, ?, ?, ?, ?)"
)
EVENT = "INSERT INTO job_events (job_id, seq, data, created_at) VALUES (?, ?, ?, ?)"
JOB = (
    "INSERT INTO jobs (id, key_id, model, served_model, provider, prompt, effective_prompt, options,"
    " callback_url, status, cost, created_at, updated_at) VALUES (?, ?, 'm', 'm', 'p', 'x', 'x', '{}', ?,"
    " 'queued', 10, ?, ?)"
)
FILL = [
    (KEY, ("k1", "one", "h1", "gw_1", 82, CREATED)),
    (KEY, ("k2", "two", "h2", "gw_2", 5, CREATED)),
    (JOB, ("j1", "k1", "https://example.test/hook", CREATED, CREATED)),
    (JOB, ("j2", "k1", None, CREATED, CREATED)),
    (JOB, ("j3", "k1", None, CREATED, CREATED)),
    (JOB, ("j4", "k2", None, CREATED, CREATED)),
    (LEDGER, ("k1", 100, "credit", None, 100, CREATED)),
    (LEDGER, ("k1", -10, "debit", "j1", 90, CREATED)),
    (LEDGER, ("k1", -10, "debit", "j2", 80, CREATED)),
    (LEDGER, ("k1", -10, "debit", "j3", 70, CREATED)),
    (LEDGER, ("k1", 10, "refund", "j3", 80, DONE)),
    (LEDGER, ("k1", 2, "settle", "j1", 82, DONE)),
    (LEDGER, ("k2", 5, "credit", None, 5, CREATED)),
    (
        "UPDATE jobs SET has_slot = 1, account = 'a', status = 'processing', epoch = 1, owner = 'r1'"
        " WHERE id IN ('j1', 'j2', 'j3')",
        (),
    ),
    (
        "UPDATE jobs SET status = 'completed', has_slot = 0, url = 'https://cdn.test/1.png', completed_at = ?"
        " WHERE id = 'j1'",
        (DONE,),
    ),
    (
        "UPDATE jobs SET status = 'failed', has_slot = 0, error = 'boom', refunded = 1, completed_at = ?"
        " WHERE id = 'j3'",
        (DONE,),
    ),
    (EVENT, ("j1", 1, '{"s":1}', CREATED)),
    (EVENT, ("j1", 2, '{"s":2}', DONE)),
    (
        "INSERT INTO idempotency (key_id, idem_key, body_hash, job_id, created_at) VALUES (?, ?, ?, ?, ?)",
        ("k1", "once", "b", "j1", CREATED),
    ),
    (
        "INSERT INTO webhook_deliveries (job_id, url, attempts, delivered_at) VALUES (?, ?, ?, ?)",
        ("j1", "https://example.test/hook", 1, DONE),
    ),
]


Contents = dict[str, list[dict[str, Any]]]


async def fill(db_target: Target) -> Contents:
    for sql, params in FILL:
        await db_target.run(sql, *params)
    return await contents(db_target)


async def contents(db_target: Target) -> Contents:
    return {table: sorted(await db_target.rows(f"SELECT * FROM {table}"), key=repr) for table in TABLES}


def assert_kept(after: Contents, before: Contents) -> None:
    """Every row is still there with the values it had (a column added since is left out)."""
    for table, rows in before.items():
        columns = set(rows[0]) if rows else set()
        kept = [{name: value for name, value in row.items() if name in columns} for row in after[table]]
        assert kept == rows, f"{table}: rows changed by the upgrade"


def new_job(key_id: str) -> NewJob:
    return NewJob(key_id, "m", "m", "p", "x", "x", None, {}, 10)


async def still_works(db: Database) -> None:
    """Today's operations on the upgraded store: the balance is the old one, a create debits it (on
    PostgreSQL through the functions the repeatable step made), a failed job is refunded."""
    assert await ledger.balance(db, "k1") == 82 == await ledger.total(db, "k1")
    job, _ = await jobs.create(db, new_job("k1"))
    assert await ledger.balance(db, "k1") == 72
    assert await jobs.finish(db, job.id, "failed", {}, {"status": "Error", "job_id": job.id}, refund=True)
    assert await ledger.balance(db, "k1") == 82 == await ledger.total(db, "k1")


def test_applied_migrations_are_never_edited() -> None:
    listed = dict(
        reversed(line.split("  ", 1)) for line in (MIGRATIONS_DIR / "SHA256SUMS").read_text().splitlines()
    )
    files = sorted(path.name for path in MIGRATIONS_DIR.glob("*.sql"))
    assert sorted(listed) == files, (
        "gateway/store/migrations/SHA256SUMS lists other files than there are: a new migration's file is"
        " added to it (sha256sum NNNN.*.sql >> SHA256SUMS); an applied one is never removed"
    )
    for name in files:
        digest = hashlib.sha256((MIGRATIONS_DIR / name).read_bytes()).hexdigest()
        assert digest == listed[name], (
            f"{name} was edited after it was applied: databases that ran it keep the old text. Put it back"
            " and add a new migration instead (a function's or trigger's body: edit its source, the"
            " start-up makes it again)"
        )
    assert [len(migrations("sqlite")), len(migrations("postgresql"))] == [LAST, LAST]


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_migrating_one_start_up_at_a_time_gives_a_fresh_database_schema(
    engine: str, tmp_path: Path
) -> None:
    want = await fresh_schema(engine, tmp_path)
    async with target(engine, tmp_path, "stepped") as stepped:
        for number in range(1, LAST + 1):
            assert await stepped.start_up(upto=number) == number
        assert await stepped.start_up() == LAST  # and one more start with nothing to apply
        assert_same_schema(await stepped.schema(), want, f"{engine}: migrated one start-up at a time")


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_an_old_deployment_upgrades_to_the_fresh_schema_with_its_data(
    engine: str, tmp_path: Path
) -> None:
    want = await fresh_schema(engine, tmp_path)
    async with target(engine, tmp_path, "old") as old:
        for number in range(1, 9):  # as main had them at 5ab3ed8 (migration 8 new, 3 and 7 not yet edited)
            await old.apply(number, old_text(number, old.dialect))
        before = await fill(old)
        old_schema = await old.schema()
        db = await start(old)
        try:
            upgraded = await old.schema()
            assert_same_schema(upgraded, want, f"{engine}: an old deployment, upgraded")
            assert_kept(await contents(old), before)
            print(
                f"\n{engine}: a database at migration 8 with migrations 3, 7 (and 8 on PostgreSQL) as first written"
            )
            print(
                f"  before the upgrade, parts of its schema unlike a fresh one's: {diff_names(old_schema, want)}"
            )
            print(f"  after today's start-up: version {LAST}, {len(upgraded)} parts compared, all as fresh")
            print("  rows kept: " + ", ".join(f"{table} {len(rows)}" for table, rows in before.items()))
            await still_works(db)
            print("  k1's balance 82 before and after; a create debits 10, its failure refunds 10")
        finally:
            await db.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_a_database_of_the_previous_release_upgrades_with_its_data(engine: str, tmp_path: Path) -> None:
    want = await fresh_schema(engine, tmp_path)
    async with target(engine, tmp_path, "previous") as previous:
        assert await previous.start_up(upto=LAST - 1) == LAST - 1  # 0001-0013, what the release made
        before = await fill(previous)
        db = await start(previous)
        try:
            assert_same_schema(await previous.schema(), want, f"{engine}: upgraded from {LAST - 1}")
            assert_kept(await contents(previous), before)
            await still_works(db)
        finally:
            await db.close()


def diff_names(got: dict[str, str], want: dict[str, str]) -> Sequence[str]:
    return sorted(name for name in got.keys() | want.keys() if got.get(name) != want.get(name))


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_each_start_up_makes_functions_and_triggers_as_their_source_stands(
    engine: str, tmp_path: Path
) -> None:
    want = await fresh_schema(engine, tmp_path)
    async with target(engine, tmp_path, "drifted") as drifted:
        db = await start(drifted)
        await db.close()
        trigger_ids = "SELECT tgname, oid FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"
        if engine == "postgres":
            kept = await drifted.rows(trigger_ids)
            await drifted.start_up()
            # an unchanged trigger is left alone: dropping it would lock its table under live replicas
            assert await drifted.rows(trigger_ids) == kept
            await drifted.run(
                "CREATE OR REPLACE FUNCTION usage_from_ledger() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN RETURN NULL; END $$"
            )
        await drifted.run("DROP TRIGGER slots_held_kept" + (" ON jobs" if engine == "postgres" else ""))
        assert await drifted.schema() != want
        await drifted.start_up()
        assert_same_schema(
            await drifted.schema(), want, f"{engine}: started again after its functions drifted"
        )
