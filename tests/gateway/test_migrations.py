"""Migrations on both engines: the files never change, any path of upgrades ends in a fresh database's
schema, and each start-up makes the functions and triggers as their source stands."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.store.db import Database
from gateway.store.postgres import PostgresDatabase, to_dollars
from gateway.store.postgres import migrate as postgres_migrate
from gateway.store.schema import migrations
from gateway.store.sqlite import SqliteDatabase
from gateway.store.sqlite import migrate as sqlite_migrate
from tests.conftest import POSTGRES_ADMIN_URL
from tests.gateway.schema_snapshot import assert_same_schema, postgres_schema, sqlite_schema

pytestmark = pytest.mark.anyio

MIGRATIONS_DIR = Path(__file__).parents[2] / "gateway" / "store" / "migrations"
LAST = len(migrations("sqlite"))


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
