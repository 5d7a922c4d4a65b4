"""Fixtures of the gateway's tests: the store on each engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.db import Database
from gateway.store.postgres import PostgresDatabase
from gateway.store.sqlite import SqliteDatabase


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The store, opened (migrated) on a real SQLite file, then on a real PostgreSQL database of its own."""
    engine: Database
    if request.param == "sqlite":
        engine = SqliteDatabase(tmp_path / "g.sqlite3")
    else:
        engine = PostgresDatabase(request.getfixturevalue("postgres_url"))
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    """The PostgreSQL store alone, opened on a database of its own (its batched statements)."""
    db = PostgresDatabase(postgres_url)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
