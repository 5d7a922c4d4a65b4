"""At-most-once upstream submits: a submit that may have reached the upstream is found again or
refunded as `submit_uncertain`, never sent a second time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.jobs.runner import Runner
from gateway.store import events
from gateway.store import jobs as job_store
from gateway.store.job_records import Finished, Job
from tests.conftest import admin_headers, bearer, make_settings
from tests.fakes import ScriptedProvider, release
from tests.sse import parse

pytestmark = pytest.mark.anyio

T = TypeVar("T")
FINDING = {"adapter": "tests.fakes:FindingProvider"}


@asynccontextmanager
async def gateway(
    tmp_path: Path, database_url: str | None = None, **scripted: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, str, Starlette]]:
    app = create_app(make_settings(tmp_path, scripted=scripted, database_url=database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            created = await client.post(
                "/admin/keys", json={"name": "k", "tokens": 100}, headers=admin_headers()
            )
            yield client, created.json()["key"], app


async def until(check: Callable[[], Awaitable[T | None]]) -> T:
    """The first truthy answer of `check`, asked again until it comes (bounded, not timed)."""
    with anyio.fail_after(20):
        while not (value := await check()):
            await anyio.sleep(0.01)
        return value


def upstream_of(app: Starlette) -> ScriptedProvider:
    adapter = app.state.services.registry.upstream("scripted").adapter
    assert isinstance(adapter, ScriptedProvider)
    return adapter


async def crash_after_the_submit_left(client: httpx.AsyncClient, key: str, app: Starlette) -> str:
    """A job whose submit the upstream received, and whose driver then died before hearing the id;
    then the recovery of a restarted process."""
    created = await client.post(
        "/api/generations", json={"model": "echo", "prompt": "hang-submit"}, headers=bearer(key)
    )
    assert created.status_code == 202, created.text
    job_id: str = created.json()["id"]
    upstream, svc = upstream_of(app), app.state.services

    async def received() -> bool:
        return upstream.submitted == [job_id]

    await until(received)
    stored = await job_store.get(svc.db, job_id)
    assert stored is not None and stored.submit_intent_at is not None and stored.upstream_id is None
    svc.runner.stop_local(job_id)  # the process dies here: the driver never hears the upstream id

    async def stopped() -> bool:
        return bool(svc.runner.running == 0)

    await until(stopped)
    assert await svc.runner.recover(starting=True) == 1
    return job_id


async def finished(app: Starlette, job_id: str) -> Job:
    async def done() -> Job | None:
        job = await job_store.get(app.state.services.db, job_id)
        return job if job is not None and job.finished else None

    return await until(done)


async def money(client: httpx.AsyncClient, key: str) -> tuple[list[str], int]:
    ledger = (await client.get("/api/ledger?limit=100", headers=bearer(key))).json()["items"]
    balance = (await client.get("/api/balance", headers=bearer(key))).json()["token_balance"]
    assert sum(row["delta"] for row in ledger) == balance
    return sorted(row["reason"] for row in ledger), balance


async def terminal_event(client: httpx.AsyncClient, key: str, job_id: str) -> dict[str, Any]:
    stream = await client.get(f"/api/generations/{job_id}/events", headers=bearer(key))
    return [event for _, event in parse(stream.text)][-1]


async def test_a_submit_lost_in_a_crash_ends_submit_uncertain_refunded_once(tmp_path: Path) -> None:
    async with gateway(tmp_path) as (client, key, app):
        job_id = await crash_after_the_submit_left(client, key, app)
        job = await finished(app, job_id)
        assert (job.status, job.error_code, job.refunded) == ("failed", "submit_uncertain", True)
        last = await terminal_event(client, key, job_id)
        assert last["status"] == "Error" and last["code"] == "submit_uncertain" and last["refunded"] is True
        body = (await client.get(f"/api/generations/{job_id}", headers=bearer(key))).json()
        assert body["status"] == "failed" and body["error_code"] == "submit_uncertain" and body["refunded"]
        assert await money(client, key) == (["credit", "debit", "refund"], 100)
        assert upstream_of(app).submitted == [job_id]  # never sent a second time


async def test_a_submit_lost_in_a_crash_is_found_again_where_the_upstream_lists_tasks(tmp_path: Path) -> None:
    async with gateway(tmp_path, **FINDING) as (client, key, app):
        job_id = await crash_after_the_submit_left(client, key, app)
        job = await finished(app, job_id)
        assert (job.status, job.upstream_id, job.refunded) == ("completed", f"up-{job_id}", False)
        assert (await terminal_event(client, key, job_id))["status"] == "Completed"
        assert await money(client, key) == (["credit", "debit"], 90)
        assert upstream_of(app).submitted == [job_id]


@pytest.mark.parametrize(("scripted", "outcome"), [({}, "failed"), (FINDING, "completed")])
async def test_a_submit_without_an_answer_is_never_resent(
    tmp_path: Path, scripted: dict[str, Any], outcome: str
) -> None:
    async with gateway(tmp_path, **scripted) as (client, key, app):
        response = await client.post(
            "/api/generate", json={"model": "echo", "prompt": "no-answer"}, headers=bearer(key)
        )
        events = [event for _, event in parse(response.text)]
        job = await finished(app, events[0]["job_id"])
        assert job.status == outcome
        if outcome == "failed":
            assert events[-1]["code"] == "submit_uncertain" and events[-1]["refunded"] is True
            assert await money(client, key) == (["credit", "debit", "refund"], 100)
        else:
            assert events[-1]["status"] == "Completed"
            assert await money(client, key) == (["credit", "debit"], 90)
        assert upstream_of(app).submitted == [job.id]


async def test_a_job_that_died_before_sending_anything_is_submitted_on_recovery(tmp_path: Path) -> None:
    async with gateway(tmp_path) as (client, key, app):
        svc = app.state.services
        created = await client.post(
            "/api/generations", json={"model": "echo", "prompt": "hold"}, headers=bearer(key)
        )
        job_id = created.json()["id"]
        svc.runner.stop_local(job_id)

        async def stopped() -> bool:
            return bool(svc.runner.running == 0)

        await until(stopped)
        # As a job is when the process died before its driver got to the submit: no intent, no id.
        await svc.db.write(
            lambda tx: tx.execute(
                "UPDATE jobs SET submit_intent_at = NULL, upstream_id = NULL WHERE id = ?", (job_id,)
            )
        )
        upstream_of(app).submitted.clear()
        assert await svc.runner.recover(starting=True) == 1
        release()
        job = await finished(app, job_id)
        assert job.status == "completed" and upstream_of(app).submitted == [job_id]


@pytest.mark.parametrize(
    ("scripted", "outcome", "cancelled"), [({}, "failed", True), (FINDING, "completed", False)]
)
async def test_a_replica_that_hears_its_submit_answered_after_a_take_over(
    tmp_path: Path, scripted: dict[str, Any], outcome: str, cancelled: bool
) -> None:
    """Replica A sent the submit and stalled; B took the job over. When A hears the upstream id at
    last, it cancels that task only if B did not find it and follow it."""
    async with gateway(tmp_path, **scripted) as (client, key, app):
        svc = app.state.services
        created = await client.post(
            "/api/generations", json={"model": "echo", "prompt": "hang-submit hold"}, headers=bearer(key)
        )
        job_id = created.json()["id"]
        upstream = upstream_of(app)

        async def received() -> bool:
            return upstream.submitted == [job_id]

        await until(received)
        other = Runner(
            svc.db, svc.bus, svc.registry, svc.results, svc.settings.model_copy(update={"instance_id": "b"})
        )
        async with anyio.create_task_group() as group:
            other.attach(group)
            assert await other.recover(starting=True) == 1  # B takes the job over (a new epoch)

            async def taken_up() -> Job | None:
                job = await job_store.get(svc.db, job_id)
                return job if job is not None and (job.upstream_id or job.finished) else None

            await until(taken_up)
            release("submit")  # A hears its answer now, and finds the job is no longer its own

            async def a_gave_up() -> bool:
                return bool(svc.runner.running == 0)

            await until(a_gave_up)
            release()
            job = await finished(app, job_id)
            group.cancel_scope.cancel()
        assert job.status == outcome
        assert upstream.cancelled == ([f"up-{job_id}"] if cancelled else [])
        assert upstream.submitted == [job_id]


async def test_a_renewal_between_a_finish_and_its_driver_hearing_of_it_leaves_the_driver_be(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The finish has committed and its driver has not heard yet: a lease renewal then finds the job
    gone from the leases it holds. It is this driver's own finish, not one from elsewhere."""
    real_finish = job_store.finish
    committed = anyio.Event()

    async def finish_heard_late(*args: Any, **kwargs: Any) -> Finished | None:
        finished = await real_finish(*args, **kwargs)
        committed.set()
        await anyio.sleep(1.5)  # longer than the renewals' first wait (below)
        return finished

    monkeypatch.setattr("gateway.jobs.driver.job_store.finish", finish_heard_late)
    caplog.set_level(logging.INFO, logger="gateway.runner")
    async with gateway(tmp_path, postgres_url) as (client, key, app):  # leases: a shared database
        svc = app.state.services
        svc.runner.renew_seconds = 0.02  # after the first wait (at most a second) they come quickly
        created = await client.post(
            "/api/generations", json={"model": "echo", "prompt": "hello"}, headers=bearer(key)
        )
        job_id = created.json()["id"]
        await committed.wait()

        async def driver_done() -> bool:
            return bool(svc.runner.running == 0)

        await until(driver_done)
        job = await finished(app, job_id)
        logged = await events.after(svc.db, job_id, 0)
    assert job.status == "completed" and logged[-1].data["status"] == "Completed"
    assert "finished elsewhere" not in caplog.text
