"""Durable jobs over ASGI: the job object, listing, cancel, resumable events, stream tokens, idempotency."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from gateway.web import auth
from tests.conftest import Harness, admin_headers, bearer
from tests.fakes import release
from tests.gateway.test_generate import assert_error, balance_of, ledger_of
from tests.sse import parse

pytestmark = pytest.mark.anyio

JOB_FIELDS = {
    "id",
    "model",
    "prompt",
    "style",
    "options",
    "status",
    "progress",
    "cost",
    "refunded",
    "url",
    "urls",
    "content_type",
    "error",
    "created_at",
    "updated_at",
    "completed_at",
    "expires_at",
    "status_url",
    "events_url",
}


async def create(harness: Harness, key: str, prompt: str = "x", **extra: Any) -> dict[str, Any]:
    response = await harness.client.post(
        "/api/generations", json={"model": "echo", "prompt": prompt, **extra}, headers=bearer(key)
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def wait_finished(harness: Harness, key: str, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:
            job: dict[str, Any] = (
                await harness.client.get(f"/api/generations/{job_id}", headers=bearer(key))
            ).json()
            if job["status"] in ("completed", "failed", "canceled"):
                return job
            await anyio.sleep(0.02)


async def test_create_returns_202_job_object_and_runs(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    job = await create(harness, key)
    assert JOB_FIELDS <= set(job)
    assert job["status"] in ("queued", "processing") and job["cost"] == 10 and job["refunded"] is False
    assert job["id"].startswith("job_") and len(job["id"]) >= 28
    assert job["status_url"] == f"http://testserver/api/generations/{job['id']}"
    assert "?token=" in job["events_url"]
    done = await wait_finished(harness, key, job["id"])
    assert done["status"] == "completed" and done["progress"] == 100 and done["url"] and done["completed_at"]


async def test_list_pages_newest_first_with_status_filter(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    ids = [(await create(harness, key, prompt))["id"] for prompt in ("a", "fail", "c")]
    for job_id in ids:
        await wait_finished(harness, key, job_id)
    page = (await harness.client.get("/api/generations?limit=2", headers=bearer(key))).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    assert [j["id"] for j in page["items"]] == [ids[2], ids[1]]
    rest = (await harness.client.get("/api/generations?limit=2&offset=2", headers=bearer(key))).json()
    assert [j["id"] for j in rest["items"]] == [ids[0]]
    failed = (await harness.client.get("/api/generations?status=failed", headers=bearer(key))).json()
    assert [j["id"] for j in failed["items"]] == [ids[1]] and failed["total"] == 1
    for bad in ("limit=0", "limit=101", "limit=x", "offset=-1", "status=done", "offset=9223372036854775808"):
        assert_error(
            await harness.client.get(f"/api/generations?{bad}", headers=bearer(key)), 400, "invalid_request"
        )


async def test_another_keys_job_is_404_everywhere(harness: Harness) -> None:
    owner, _ = await harness.new_key(100)
    other, _ = await harness.new_key(100)
    job = await create(harness, owner, "hold")
    for method, path in (
        ("GET", f"/api/generations/{job['id']}"),
        ("POST", f"/api/generations/{job['id']}/cancel"),
        ("GET", f"/api/generations/{job['id']}/events"),
        ("GET", "/api/generations/job_doesnotexist"),
    ):
        assert_error(await harness.client.request(method, path, headers=bearer(other)), 404, "not_found")
    listed = (await harness.client.get("/api/generations", headers=bearer(other))).json()
    assert listed["total"] == 0
    release()


async def test_progress_without_a_submitted_still_turns_the_job_to_processing(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    job = await create(harness, key, "unannounced hold")
    url = f"/api/generations/{job['id']}"
    with anyio.fail_after(5):
        while (shown := (await harness.client.get(url, headers=bearer(key))).json())["progress"] != 25:
            await anyio.sleep(0.01)
    assert shown["status"] == "processing"
    release()
    with anyio.fail_after(5):
        while (shown := (await harness.client.get(url, headers=bearer(key))).json())[
            "status"
        ] == "processing":
            await anyio.sleep(0.01)
    assert shown["status"] == "completed" and shown["progress"] == 100


async def test_cancel_mid_job_refunds_once_then_409(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    job = await create(harness, key, "hold")
    with anyio.fail_after(5):
        while (await harness.client.get(f"/api/generations/{job['id']}", headers=bearer(key))).json()[
            "status"
        ] != "processing":
            await anyio.sleep(0.01)
    cancelled = await harness.client.post(f"/api/generations/{job['id']}/cancel", headers=bearer(key))
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "canceled" and body["refunded"] is True
    again = await harness.client.post(f"/api/generations/{job['id']}/cancel", headers=bearer(key))
    assert_error(again, 409, "already_finished")
    release()  # the upstream would have finished: the job must stay cancelled
    await anyio.sleep(0.1)
    assert await balance_of(harness, key) == 100
    reasons = [row["reason"] for row in await ledger_of(harness, key)]
    assert reasons == ["refund", "debit", "credit"]
    events = parse(
        (await harness.client.get(f"/api/generations/{job['id']}/events", headers=bearer(key))).text
    )
    assert events[-1][1] == {"status": "Canceled", "job_id": job["id"], "refunded": True}
    scripted = harness.app.state.services.registry.upstream("scripted").adapter
    assert scripted.cancelled == [f"up-{job['id']}"]


async def test_cancel_of_finished_job_is_409(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    job = await create(harness, key)
    await wait_finished(harness, key, job["id"])
    assert_error(
        await harness.client.post(f"/api/generations/{job['id']}/cancel", headers=bearer(key)),
        409,
        "already_finished",
    )
    assert await balance_of(harness, key) == 90


async def test_replay_equals_live_and_every_resume_gives_the_rest(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    live = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
    )
    live_events = parse(live.text)
    job_id = live_events[0][1]["job_id"]
    replay = await harness.client.get(f"/api/generations/{job_id}/events", headers=bearer(key))
    assert replay.status_code == 200 and parse(replay.text) == live_events
    last = live_events[-1][0]
    for after in range(0, last):
        by_header = await harness.client.get(
            f"/api/generations/{job_id}/events", headers={**bearer(key), "Last-Event-ID": str(after)}
        )
        assert parse(by_header.text) == live_events[after:]
        by_query = await harness.client.get(
            f"/api/generations/{job_id}/events?last_event_id={after}", headers=bearer(key)
        )
        assert parse(by_query.text) == live_events[after:]
    done = await harness.client.get(
        f"/api/generations/{job_id}/events", headers={**bearer(key), "Last-Event-ID": str(last)}
    )
    assert done.status_code == 204 and done.content == b""
    bad = await harness.client.get(
        f"/api/generations/{job_id}/events", headers={**bearer(key), "Last-Event-ID": "x"}
    )
    assert_error(bad, 400, "invalid_request")


async def test_events_url_token_works_without_authorization(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    job = await create(harness, key)
    await wait_finished(harness, key, job["id"])
    path = job["events_url"].removeprefix("http://testserver")
    ok = await harness.client.get(path)
    assert ok.status_code == 200 and parse(ok.text)[-1][1]["status"] == "Completed"
    token = path.split("token=")[1]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_error(await harness.client.get(path.replace(token, tampered)), 401, "unauthorized")
    secret = harness.app.state.services.stream_secret
    expired = auth.stream_token(secret, job["id"], 60, at=0)
    assert_error(
        await harness.client.get(f"/api/generations/{job['id']}/events?token={expired}"), 401, "unauthorized"
    )
    other = await create(harness, key)
    assert_error(
        await harness.client.get(f"/api/generations/{other['id']}/events?token={token}"), 401, "unauthorized"
    )


async def test_idempotent_create_one_debit_and_conflict(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    headers = {**bearer(key), "Idempotency-Key": "order-42"}
    body = {"model": "echo", "prompt": "same"}
    first = await harness.client.post("/api/generations", json=body, headers=headers)
    second = await harness.client.post("/api/generations", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    streamed = await harness.client.post("/api/generate", json=body, headers=headers)
    events = parse(streamed.text)
    assert events[0][0] == 1 and events[0][1]["job_id"] == first.json()["id"]
    assert events[-1][1]["status"] == "Completed"
    assert await balance_of(harness, key) == 90
    conflict = await harness.client.post(
        "/api/generations", json={**body, "prompt": "other"}, headers=headers
    )
    assert_error(conflict, 409, "idempotency_conflict")
    other_key, _ = await harness.new_key(100)
    separate = await harness.client.post(
        "/api/generations", json=body, headers={**bearer(other_key), "Idempotency-Key": "order-42"}
    )
    assert separate.status_code == 202 and separate.json()["id"] != first.json()["id"]


async def test_quote_debits_nothing(harness: Harness) -> None:
    key, _ = await harness.new_key(25)
    response = await harness.client.post(
        "/api/quote", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
    )
    assert response.status_code == 200
    assert response.json() == {
        "model": "echo",
        "cost": 10,
        "hold": False,
        "balance": 25,
        "sufficient": True,
        "available": True,
    }
    low = await harness.client.post("/api/quote", json={"model": "luma", "prompt": "x"}, headers=bearer(key))
    assert low.json()["sufficient"] is False and low.json()["cost"] == 30
    assert await balance_of(harness, key) == 25


async def test_ledger_pages_and_sums_to_balance(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    for prompt in ("a", "fail", "b"):
        job = await create(harness, key, prompt)
        await wait_finished(harness, key, job["id"])
    page = (await harness.client.get("/api/ledger?limit=2&offset=1", headers=bearer(key))).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["offset"] == 1
    items = await ledger_of(harness, key)
    assert sum(i["delta"] for i in items) == await balance_of(harness, key) == 80
    assert set(items[0]) == {"id", "delta", "reason", "job_id", "balance_after", "note", "created_at"}


async def test_idempotency_key_expires_after_its_ttl(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    headers = {**bearer(key), "Idempotency-Key": "monthly-report"}
    body = {"model": "echo", "prompt": "same"}
    first = (await harness.client.post("/api/generations", json=body, headers=headers)).json()
    await harness.app.state.services.db.write(
        lambda tx: tx.execute("UPDATE idempotency SET created_at = '2000-01-01T00:00:00Z'")
    )
    later = (
        await harness.client.post("/api/generations", json={**body, "prompt": "new"}, headers=headers)
    ).json()
    assert later["id"] != first["id"]  # past 24 h the key is free again
    assert await balance_of(harness, key) == 80


async def test_hostile_stream_tokens_and_event_ids_are_refused_not_crashed_on(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    job_id = (await create(harness, key))["id"]
    for token in ("1.%C3%A9", f"{'9' * 5000}.abc", "%C2%B2.abc"):
        response = await harness.client.get(f"/api/generations/{job_id}/events?token={token}")
        assert response.status_code == 401, (token, response.status_code)
    for after in ("9" * 5000, "²"):
        headers = {**bearer(key), "Last-Event-ID": after.encode("latin-1")}  # as raw header bytes
        response = await harness.client.get(f"/api/generations/{job_id}/events", headers=headers)
        assert response.status_code == 400, (after, response.status_code)
    listed = await harness.client.get(f"/api/generations?offset={'9' * 5000}", headers=bearer(key))
    assert listed.status_code == 400


async def test_no_origin_may_read_cross_origin_unless_the_operator_allows_it(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    job = await create(harness, key)
    events_url = job["events_url"].removeprefix("http://testserver")
    response = await harness.client.get(events_url, headers={"Origin": "http://page.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


async def test_a_revoked_keys_stream_tokens_stop_working(harness: Harness) -> None:
    key, record = await harness.new_key(100)
    job = await wait_finished(harness, key, (await create(harness, key))["id"])
    events_url = job["events_url"].removeprefix("http://testserver")
    assert (await harness.client.get(events_url)).status_code == 200  # replays the finished job
    await harness.client.delete(f"/admin/keys/{record['id']}", headers=admin_headers())
    refused = await harness.client.get(events_url)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
