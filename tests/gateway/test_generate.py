"""POST /api/generate over ASGI: the stream a client sees, what it paid, and every refusal before a debit."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import Harness, bearer, make_settings
from tests.sse import parse

pytestmark = pytest.mark.anyio

ERROR_KEYS = {"status", "message", "code"}


async def ledger_of(harness: Harness, key: str) -> list[dict[str, Any]]:
    response = await harness.client.get("/api/ledger?limit=100", headers=bearer(key))
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def balance_of(harness: Harness, key: str) -> int:
    response = await harness.client.get("/api/balance", headers=bearer(key))
    assert response.status_code == 200
    return int(response.json()["token_balance"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert ERROR_KEYS <= set(body)
    assert body["status"] == "Error"
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


async def test_stream_runs_from_processing_started_to_completed(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "a song"}, headers=bearer(key)
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "event:" not in response.text
    events = parse(response.text)
    ids = [i for i, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    statuses = [e["status"] for _, e in events]
    assert statuses == ["Processing started", "Queued", "Processing", "Processing", "Completed"]
    first, last = events[0][1], events[-1][1]
    assert first["model"] == "echo" and first["cost"] == 10 and first["balance"] == 90
    assert all(e["job_id"] == first["job_id"] for _, e in events)
    assert events[1][1]["position"] == 2
    assert events[2][1]["progress"] == 25
    assert last["url"].endswith(".wav") and last["urls"] == [last["url"]]
    assert last["content_type"] == "audio/wav" and last["expires_at"].endswith("Z")
    assert await balance_of(harness, key) == 90
    ledger = await ledger_of(harness, key)
    assert [(row["reason"], row["delta"]) for row in ledger] == [("debit", -10), ("credit", 100)]
    assert ledger[0]["job_id"] == first["job_id"] and ledger[0]["balance_after"] == 90


async def test_a_new_jobs_stream_follows_it_live_without_reading_the_log(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream subscribes before the job's driver starts: every event arrives live, in order."""
    from gateway.store import events as event_log

    reads: list[str] = []
    real_after = event_log.after

    async def counted(db: Any, job_id: str, seq: int) -> Any:
        reads.append(job_id)
        return await real_after(db, job_id, seq)

    monkeypatch.setattr(event_log, "after", counted)
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "a song"}, headers=bearer(key)
    )
    events = parse(response.text)
    assert [i for i, _ in events] == list(range(1, 6))
    assert events[-1][1]["status"] == "Completed"
    assert reads == []
    assert harness.app.state.services.bus.listener_count == 0  # nothing left subscribed


async def test_failed_job_is_refunded_once(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "please fail"}, headers=bearer(key)
    )
    events = parse(response.text)
    last = events[-1][1]
    assert last["status"] == "Error" and last["refunded"] is True
    assert last["message"] == "the upstream refused: content policy" and last["code"]
    assert await balance_of(harness, key) == 100
    reasons = [(row["reason"], row["delta"]) for row in await ledger_of(harness, key)]
    assert reasons == [("refund", 10), ("debit", -10), ("credit", 100)]
    job = (await harness.client.get(f"/api/generations/{last['job_id']}", headers=bearer(key))).json()
    assert job["status"] == "failed" and job["refunded"] is True and job["error"]


async def test_upstream_unavailable_fails_with_refund(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "unavailable"}, headers=bearer(key)
    )
    last = parse(response.text)[-1][1]
    assert last["status"] == "Error" and last["code"] == "upstream_unavailable" and last["refunded"]
    assert "503" in last["message"]
    assert await balance_of(harness, key) == 100


async def test_ping_health_ready(harness: Harness) -> None:
    ping = await harness.client.get("/api/ping")
    assert ping.status_code == 200 and ping.text == "pong"
    assert ping.headers["content-type"].startswith("text/plain")
    assert (await harness.client.get("/healthz")).json() == {"status": "ok"}
    ready = await harness.client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["database"] == "ok"
    assert body["providers"]["scripted"] == "closed" and body["providers"]["suno"] == "unconfigured"


# --- refusals: each with its code, and nothing debited ---------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"prompt": "x"}, "invalid_request"),
        ({"model": "echo"}, "invalid_request"),
        ({"model": "echo", "prompt": "   "}, "invalid_request"),
        ({"model": "echo", "prompt": 7}, "invalid_request"),
        ({"model": "echo", "prompt": "x" * 2001}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "options": []}, "invalid_request"),
        ({"model": "nope", "prompt": "x"}, "unknown_model"),
        ({"model": "pika", "prompt": "x", "style": "99"}, "invalid_style"),
        ({"model": "echo", "prompt": "x", "style": "1"}, "invalid_style"),
        ({"model": "echo", "prompt": "x", "options": {"speed": 2}}, "invalid_option"),
        ({"model": "pika", "prompt": "x", "options": {"duration": 7}}, "invalid_option"),
        ({"model": "pika", "prompt": "x", "options": {"duration": "5"}}, "invalid_option"),
        ({"model": "echo", "prompt": "x", "callback_url": "ftp://example.com/hook"}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "callback_url": "http://127.0.0.1/hook"}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "callback_url": "http://10.1.2.3/hook"}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "callback_url": "http://[::1"}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "callback_url": "http://127.1/h"}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "callback_url": "http://0x7f000001/h"}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "callback_url": "http://2130706433/h"}, "invalid_request"),
        ({"model": "echo", "prompt": "x", "callback_url": "http://example.com:99999/h"}, "invalid_request"),
        ({"model": "pika", "prompt": "x", "style": 4}, "invalid_request"),
    ],
)
async def test_bad_requests_are_refused_before_any_debit(harness: Harness, body: Any, code: str) -> None:
    key, _ = await harness.new_key(100)
    for path in ("/api/generate", "/api/generations"):
        assert_error(await harness.client.post(path, json=body, headers=bearer(key)), 400, code)
    assert await balance_of(harness, key) == 100
    assert len(await ledger_of(harness, key)) == 1


async def test_invalid_option_names_the_field(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate",
        json={"model": "luma", "prompt": "x", "options": {"aspect_ratio": "2:1"}},
        headers=bearer(key),
    )
    body = assert_error(response, 400, "invalid_option")
    assert body["option"] == "aspect_ratio" and "aspect_ratio" in body["message"]


async def test_malformed_json_and_non_object(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    headers = {**bearer(key), "Content-Type": "application/json"}
    assert_error(
        await harness.client.post("/api/generate", content=b"{nope", headers=headers), 400, "invalid_request"
    )
    assert_error(
        await harness.client.post("/api/generate", content=b"[1]", headers=headers), 400, "invalid_request"
    )
    lone_surrogate = b'{"model": "echo", "prompt": "\\ud800"}'  # valid JSON, not text
    assert_error(
        await harness.client.post("/api/generate", content=lone_surrogate, headers=headers),
        400,
        "invalid_request",
    )
    deep = b"[" * 100_000 + b"]" * 100_000
    assert_error(
        await harness.client.post("/api/generate", content=deep, headers=headers), 400, "invalid_request"
    )
    for junk in (b'{"model": "echo", "prompt": "\xff"}', b"\xff\xfe", b'{"model": ["echo"], "prompt": "x"}'):
        response = await harness.client.post("/api/generate", content=junk, headers=headers)
        assert response.status_code == 400, (junk, response.text)
    assert await balance_of(harness, key) == 100


async def test_unsupported_media_type(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", content=b"model=echo", headers={**bearer(key), "Content-Type": "text/plain"}
    )
    assert_error(response, 415, "unsupported_media_type")
    assert await balance_of(harness, key) == 100


async def test_payload_too_large(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    big = b'{"model": "echo", "prompt": "' + b"x" * (1024 * 1024) + b'"}'
    response = await harness.client.post(
        "/api/generate", content=big, headers={**bearer(key), "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        for _ in range(20):
            yield b" " * 65536

    response = await harness.client.post(
        "/api/generate", content=chunks(), headers={**bearer(key), "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")
    assert await balance_of(harness, key) == 100


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer gw_not_a_real_key", "gw_x"]
)
async def test_unauthorized(harness: Harness, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (
        ("POST", "/api/generate"),
        ("GET", "/api/balance"),
        ("GET", "/api/ledger"),
        ("GET", "/api/models"),
        ("GET", "/api/generations"),
    ):
        response = await harness.client.request(
            method, path, json={"model": "echo", "prompt": "x"}, headers=headers
        )
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_revoked_key_is_unauthorized(harness: Harness) -> None:
    key, record = await harness.new_key(100)
    from tests.conftest import admin_headers

    revoked = await harness.client.delete(f"/admin/keys/{record['id']}", headers=admin_headers())
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert_error(await harness.client.get("/api/balance", headers=bearer(key)), 401, "unauthorized")
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
    )
    assert_error(response, 401, "unauthorized")


async def test_model_not_allowed(harness: Harness) -> None:
    key, _ = await harness.new_key(100, models=["echo-backup"])
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
    )
    assert_error(response, 403, "model_not_allowed")
    models = (await harness.client.get("/api/models", headers=bearer(key))).json()["models"]
    assert [m["id"] for m in models] == ["echo-backup"]
    assert await balance_of(harness, key) == 100


async def test_insufficient_tokens_is_418_with_required_and_balance(harness: Harness) -> None:
    key, _ = await harness.new_key(9)
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
    )
    body = assert_error(response, 418, "insufficient_tokens")
    assert body["required"] == 10 and body["balance"] == 9
    assert await balance_of(harness, key) == 9
    assert len(await ledger_of(harness, key)) == 1


async def test_provider_not_configured_is_503(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", json={"model": "suno", "prompt": "x"}, headers=bearer(key)
    )
    assert_error(response, 503, "provider_unavailable")
    models = {
        m["id"]: m for m in (await harness.client.get("/api/models", headers=bearer(key))).json()["models"]
    }
    assert models["suno"]["available"] is False and models["echo"]["available"] is True
    assert await balance_of(harness, key) == 100


async def test_rate_limit_429_with_retry_after_and_headers(harness: Harness) -> None:
    key, _ = await harness.new_key(1000, rate_limit_per_minute=3)
    seen = []
    for _ in range(4):
        response = await harness.client.post(
            "/api/generations", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
        )
        seen.append(response)
    assert [r.status_code for r in seen] == [202, 202, 202, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    body = assert_error(seen[-1], 429, "rate_limited")
    assert int(seen[-1].headers["retry-after"]) >= 1 and body["retry_after"] >= 1
    assert seen[-1].headers["x-ratelimit-limit"] == "3"
    assert await balance_of(harness, key) == 1000 - 30
    other = await harness.client.get("/api/balance", headers=bearer(key))
    assert other.headers["x-ratelimit-limit"] == "3" and "x-ratelimit-reset" in other.headers


async def test_too_many_jobs_429(harness: Harness) -> None:
    key, _ = await harness.new_key(1000, max_concurrent_jobs=1)
    first = await harness.client.post(
        "/api/generations", json={"model": "echo", "prompt": "hold"}, headers=bearer(key)
    )
    assert first.status_code == 202
    second = await harness.client.post(
        "/api/generations", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
    )
    assert_error(second, 429, "too_many_jobs")
    assert "retry-after" in second.headers
    assert await balance_of(harness, key) == 990
    from tests.fakes import release

    release()


async def test_contention_never_overspends(harness: Harness) -> None:
    key, _ = await harness.new_key(100, max_concurrent_jobs=100, rate_limit_per_minute=1000)
    statuses: list[int] = []

    async def one() -> None:
        response = await harness.client.post(
            "/api/generate", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
        )
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(one)
    assert sorted(statuses) == [200] * 10 + [418] * 30
    assert await balance_of(harness, key) == 0
    ledger = await ledger_of(harness, key)
    assert sum(row["delta"] for row in ledger) == 0
    assert [row["reason"] for row in ledger].count("debit") == 10


async def test_models_lists_the_catalog(harness: Harness) -> None:
    key, _ = await harness.new_key(0)
    models = {
        m["id"]: m for m in (await harness.client.get("/api/models", headers=bearer(key))).json()["models"]
    }
    assert {"suno", "luma", "pika", "run", "local"} <= set(models)
    assert models["pika"]["kind"] == "video" and models["pika"]["cost"] == 10
    assert [s["value"] for s in models["pika"]["styles"]] == ["1", "2", "3", "4", "5", "6", "7"]
    assert models["pika"]["styles"][5] == {"value": "6", "label": "Claymation"}
    assert len(models["run"]["styles"]) == 25
    assert models["suno"]["kind"] == "audio" and models["local"]["kind"] == "image"
    assert models["luma"]["options"]["aspect_ratio"]["default"] == "16:9"


async def test_heartbeat_comment_on_a_quiet_stream(tmp_path: Any) -> None:
    from gateway.app import create_app
    from tests.fakes import release

    settings = make_settings(tmp_path, heartbeat_seconds=0.2)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            from tests.conftest import admin_headers

            created = await client.post(
                "/admin/keys", json={"name": "k", "tokens": 50}, headers=admin_headers()
            )
            key = created.json()["key"]

            async def let_go() -> None:
                await anyio.sleep(0.7)
                release()

            async with anyio.create_task_group() as tg:
                tg.start_soon(let_go)
                response = await client.post(
                    "/api/generate", json={"model": "echo", "prompt": "hold"}, headers=bearer(key)
                )
    assert ": ping\n\n" in response.text
    assert parse(response.text)[-1][1]["status"] == "Completed"


async def test_control_characters_in_a_prompt_are_refused_before_any_debit(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    for prompt in ("a\x00b", "bell\x07 ring", "next\x85line"):
        response = await harness.client.post(
            "/api/generations", json={"model": "echo", "prompt": prompt}, headers=bearer(key)
        )
        assert response.status_code == 400 and response.json()["code"] == "invalid_request", prompt
    fine = await harness.client.post(
        "/api/generations",
        json={"model": "echo", "prompt": "line one\nline two\ttabbed"},
        headers=bearer(key),
    )
    assert fine.status_code == 202
    balance = (await harness.client.get("/api/balance", headers=bearer(key))).json()["token_balance"]
    assert balance == 90
