"""The drain (SIGTERM) over ASGI: creates refused with 503, streams ended cleanly, jobs left running, resumed after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from gateway import store
from gateway.app import create_app
from gateway.jobs.services import Services
from gateway.settings import Settings
from gateway.store import jobs as job_store
from gateway.store.job_records import Job
from tests import fakes
from tests.conftest import admin_headers, bearer, make_settings
from tests.sse import parse

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app with its lifespan, and a client over ASGI; the block's end is the process stopping."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


def services(app: Starlette) -> Services:
    svc: Services = app.state.services
    return svc


async def new_key(client: httpx.AsyncClient, tokens: int = 100) -> str:
    made = await client.post("/admin/keys", json={"name": "k", "tokens": tokens}, headers=admin_headers())
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


async def until(check: Any) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)


def assert_refused(response: httpx.Response, status: int, code: str, retry_after: int) -> None:
    """A contract error that says when to come back: `Retry-After` and `retry_after` agree."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json()
    assert body["status"] == "Error" and body["code"] == code
    assert body["retry_after"] == retry_after and body["message"]


async def test_creates_during_the_drain_answer_503_shutting_down_and_debit_nothing(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        key = await new_key(client)
        app.state.drain.begin()
        for path in ("/api/generate", "/api/generations"):
            response = await client.post(
                path, json={"model": "echo", "prompt": "a song"}, headers=bearer(key)
            )
            assert_refused(response, 503, "shutting_down", 1)
        balance = await client.get("/api/balance", headers=bearer(key))
        assert balance.json()["token_balance"] == 100  # reads still answer; nothing was debited
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "draining"


async def test_an_open_stream_ends_cleanly_at_the_drain_and_resumes_after_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running(settings) as (app, client):
        key = await new_key(client)
        created = await client.post(
            "/api/generations", json={"model": "echo", "prompt": "hold"}, headers=bearer(key)
        )
        job_id = created.json()["id"]
        url = f"/api/generations/{job_id}/events"
        got: dict[str, httpx.Response] = {}

        async def follow() -> None:
            got["first"] = await client.get(url, headers=bearer(key))

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            registry = services(app).metrics.registry
            await until(lambda: registry.get_sample_value("gateway_open_streams") == 1)
            app.state.drain.begin()
        first = got["first"]
        assert first.status_code == 200
        assert first.text.endswith("retry: 1000\n\n")  # a clean end: the hint, then the end of the body
        seen = parse(first.text)  # the replay, unless the drain came first (then none: resumed from 0)
        assert [i for i, _ in seen] == list(range(1, len(seen) + 1))
        assert not any(e["status"] in ("Completed", "Error", "Canceled") for _, e in seen)
        assert services(app).streams.count == 0
        last_seen = str(seen[-1][0] if seen else 0)

        # Reconnecting to the draining replica: only the hint again, no events and no error.
        again = await client.get(url, headers={**bearer(key), "Last-Event-ID": last_seen})
        assert again.status_code == 200 and again.text == "retry: 1000\n\n"
        assert again.headers["content-type"].startswith("text/event-stream")
    # Stopped: the job was neither failed nor refunded, only left unfinished.
    job = await stored_job(settings, job_id)
    assert job.status in ("queued", "processing") and not job.refunded

    fakes.release()
    async with running(settings) as (app, client):  # the restart takes the job up again
        rest = await client.get(url, headers={**bearer(key), "Last-Event-ID": last_seen})
        assert rest.status_code == 200
        more = parse(rest.text)
        ids = [i for i, _ in seen + more]
        assert ids == list(range(1, len(ids) + 1))  # every event once, under the same ids
        assert more[-1][1]["status"] == "Completed"
        ledger = (await client.get("/api/ledger", headers=bearer(key))).json()["items"]
        assert [row["reason"] for row in ledger].count("debit") == 1
        assert "refund" not in [row["reason"] for row in ledger]


async def test_a_submit_in_flight_is_let_record_its_upstream_id_before_the_stop(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)

    async def submit_answers_later() -> None:
        await anyio.sleep(0.3)
        fakes.release("submit")

    async with anyio.create_task_group() as tg:
        async with running(settings) as (app, client):
            key = await new_key(client)
            created = await client.post(
                "/api/generations",
                json={"model": "echo", "prompt": "slow-submit, then hold"},
                headers=bearer(key),
            )
            job_id = created.json()["id"]
            await fakes.ENTERED.setdefault("submit", anyio.Event()).wait()
            app.state.drain.begin()
            tg.start_soon(submit_answers_later)
        # the stop waited for the submit; the upstream id is known, so recovery re-attaches, never resubmits
    job = await stored_job(settings, job_id)
    assert job.upstream_id == f"up-{job_id}"
    assert job.status == "processing" and not job.refunded


async def stored_job(settings: Settings, job_id: str) -> Job:
    db = store.connect(settings)
    await db.open()
    try:
        job = await job_store.get(db, job_id)
    finally:
        await db.close()
    assert job is not None
    return job
