"""End to end: a real uvicorn gateway in demo mode against the real simulator over loopback."""

from __future__ import annotations

import io
import itertools
import json
import wave
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.conftest import Live

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def stream_events(live: Live, key: str, body: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    events: list[tuple[int, dict[str, Any]]] = []
    async with live.client.stream("POST", "/api/generate", json=body, headers=auth(key)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id: int | None = None
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                assert event_id is not None
                events.append((event_id, json.loads(line[6:])))
    return events


async def wait_for_job(live: Live, key: str, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            job: dict[str, Any] = (
                await live.client.get(f"/api/generations/{job_id}", headers=auth(key))
            ).json()
            if job["status"] in ("completed", "failed", "canceled"):
                return job
            await anyio.sleep(0.1)


async def test_suno_streams_to_a_playable_wav(live: Live) -> None:
    key = await live.new_key(1000)
    events = await stream_events(live, key, {"model": "suno", "prompt": "an upbeat pop song about summer"})
    ids = [i for i, _ in events]
    assert all(a < b for a, b in itertools.pairwise(ids)) and ids[0] == 1
    statuses = [e["status"] for _, e in events]
    assert statuses[0] == "Processing started" and statuses[-1] == "Completed"
    assert "Processing" in statuses
    completed = events[-1][1]
    assert len(completed["urls"]) == 2 and completed["url"] == completed["urls"][0]
    assert completed["url"].startswith(live.url + "/files/")
    async with httpx.AsyncClient() as anonymous:  # download links need no Authorization header
        download = await anonymous.get(completed["url"])
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("audio/")
    with wave.open(io.BytesIO(download.content)) as sound:
        assert sound.getnframes() / sound.getframerate() > 0.5
    balance = (await live.client.get("/api/balance", headers=auth(key))).json()["token_balance"]
    assert balance == 990


async def test_sim_fail_refunds(live: Live) -> None:
    key = await live.new_key(100)
    events = await stream_events(live, key, {"model": "suno", "prompt": "a sad song sim:fail"})
    last = events[-1][1]
    assert last["status"] == "Error" and last["refunded"] is True and last["message"]
    assert any(e["status"] == "Processing" for _, e in events)
    assert (await live.client.get("/api/balance", headers=auth(key))).json()["token_balance"] == 100
    ledger = (await live.client.get("/api/ledger", headers=auth(key))).json()["items"]
    assert [r["reason"] for r in ledger] == ["refund", "debit", "credit"]


async def test_sim_429_is_retried_and_completes(live: Live) -> None:
    key = await live.new_key(100)
    events = await stream_events(live, key, {"model": "suno", "prompt": "a jingle sim:429"})
    assert events[-1][1]["status"] == "Completed"


async def test_disconnect_after_first_event_does_not_stop_the_job(live: Live) -> None:
    key = await live.new_key(100)
    async with live.client.stream(
        "POST", "/api/generate", json={"model": "suno", "prompt": "walk away"}, headers=auth(key)
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                job_id = json.loads(line[6:])["job_id"]
                break
    job = await wait_for_job(live, key, job_id)
    assert job["status"] == "completed" and job["url"]
    replay = await live.client.get(f"/api/generations/{job_id}/events", headers=auth(key))
    assert '"status":"Completed"' in replay.text


async def test_contention_over_http(live: Live) -> None:
    key = await live.new_key(100, max_concurrent_jobs=100, rate_limit_per_minute=1000)
    codes: list[int] = []

    async def one() -> None:
        response = await live.client.post(
            "/api/generations", json={"model": "suno", "prompt": "race"}, headers=auth(key)
        )
        codes.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(one)
    assert sorted(codes) == [202] * 10 + [418] * 30
    assert (await live.client.get("/api/balance", headers=auth(key))).json()["token_balance"] == 0
    ledger = (await live.client.get("/api/ledger?limit=100", headers=auth(key))).json()
    assert sum(r["delta"] for r in ledger["items"]) == 0 and ledger["total"] == 11


@pytest.mark.parametrize(
    ("model", "style", "kind"),
    [
        ("suno", None, "audio/"),
        ("luma", None, "video/"),
        ("pika", "6", "video/"),
        ("run", "anime", "video/"),
        ("local", None, "image/"),
    ],
)
async def test_every_model_completes_with_the_right_kind_of_result(
    live: Live, model: str, style: str | None, kind: str
) -> None:
    key = await live.new_key(100)
    body: dict[str, Any] = {"model": model, "prompt": "a lighthouse at dawn"}
    if style:
        body["style"] = style
    events = await stream_events(live, key, body)
    completed = events[-1][1]
    assert completed["status"] == "Completed", events[-1]
    assert completed["content_type"].startswith(kind)
    async with httpx.AsyncClient() as anonymous:
        download = await anonymous.get(completed["url"])
        ranged = await anonymous.get(completed["url"], headers={"Range": "bytes=0-15"})
    assert download.status_code == 200 and download.headers["content-type"].startswith(kind)
    assert len(download.content) > 100
    assert ranged.status_code == 206 and ranged.content == download.content[:16]
    job = (await live.client.get(f"/api/generations/{completed['job_id']}", headers=auth(key))).json()
    if style:
        assert job["effective_prompt"].endswith(" style") and job["effective_prompt"] != job["prompt"]
