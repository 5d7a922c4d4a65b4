"""Fixtures of the gateway's tests: the store on each engine."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.contract.responses import Job as JobObject
from gateway.jobs.services import Services
from gateway.store.db import Database
from gateway.store.event_records import Event
from gateway.store.job_records import Job
from gateway.store.postgres import PostgresDatabase
from gateway.store.sqlite import SqliteDatabase
from gateway.web import job_object as job_objects
from tests.gateway.shapes import check, check_event


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


@pytest.fixture(autouse=True)
def shapes_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event these tests stream and every job object the app makes is held to gateway/contract's
    models (the gateway builds both as dicts: events are made per progress update)."""
    sse = Event.sse

    def checked_sse(self: Event, retry_ms: int | None = None) -> str:
        check_event(self.data)
        return sse(self, retry_ms)

    monkeypatch.setattr(Event, "sse", checked_sse)
    made = job_objects.job_object

    def checked_job_object(svc: Services, job: Job) -> dict[str, Any]:
        answer = made(svc, job)
        check(JobObject, answer)
        return answer

    for module in list(sys.modules.values()):  # every module that imported it by name
        if (
            module is not None
            and module.__name__.startswith("gateway")
            and getattr(module, "job_object", None) is made
        ):
            monkeypatch.setattr(module, "job_object", checked_job_object)
