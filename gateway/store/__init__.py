"""The database: schema and migrations, keys, ledger, jobs, events, idempotency (one module each).

Routes and the runner reach the database only through these modules' named operations, and these
modules reach it only through the `Database` protocol (db.py), which each engine implements whole:
SQLite (sqlite.py, sqlite/operations.py) and PostgreSQL (postgres.py, pg_*.py). `connect` alone picks one.
"""

from __future__ import annotations

from pathlib import Path

from gateway.settings import Settings
from gateway.store.db import Database


def connect(settings: Settings) -> Database:
    """The engine the settings name (not yet opened): PostgreSQL for a postgresql:// URL, else SQLite."""
    if settings.shared_database:
        from gateway.store.postgres import PostgresDatabase

        return PostgresDatabase(str(settings.database_url))
    from gateway.store.sqlite import SqliteDatabase

    url = settings.database_url or ""
    path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else settings.db_path
    return SqliteDatabase(path)
