"""suno-api: two clips per generate, submitted → queued → streaming → complete, or error."""

from __future__ import annotations

import io
import wave
from typing import Any

import httpx
import pytest

from tests.simulator.conftest import Sim

pytestmark = pytest.mark.anyio


async def generate(sim: Sim, prompt: str, **extra: Any) -> httpx.Response:
    body = {"prompt": prompt, "make_instrumental": False, "wait_audio": False, **extra}
    return await sim.client.post("/suno/api/generate", json=body)


async def clips(sim: Sim, ids: list[str]) -> list[dict[str, Any]]:
    response = await sim.client.get("/suno/api/get", params={"ids": ",".join(ids)})
    assert response.status_code == 200
    body: list[dict[str, Any]] = response.json()
    assert [c["id"] for c in body] == ids
    return body


async def test_two_clips_live_to_complete_with_a_playable_wav(sim: Sim) -> None:
    response = await generate(sim, "an upbeat pop song about summer", make_instrumental=True)
    assert response.status_code == 200
    submitted = response.json()
    assert len(submitted) == 2 and submitted[0]["id"] != submitted[1]["id"]
    for clip in submitted:
        assert clip["status"] == "submitted" and clip["audio_url"] == ""
        assert clip["title"] == "An Upbeat Pop Song About Summer" and clip["lyric"] == "[Instrumental]"
        assert clip["model_name"] and clip["created_at"].endswith("Z")
    ids = [c["id"] for c in submitted]
    seen = []
    for seconds in (3, 4, 24):
        sim.time.advance(seconds)
        seen.append({c["status"] for c in await clips(sim, ids)})
    assert seen == [{"queued"}, {"streaming"}, {"complete"}]
    done = await clips(sim, ids)
    assert all(c["duration"] and c["error_message"] is None for c in done)
    audio = await sim.client.get(done[0]["audio_url"].removeprefix("http://sim.test"))
    assert audio.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(audio.content)) as sound:
        assert sound.getnframes() > 0


async def test_streaming_clips_already_have_audio(sim: Sim) -> None:
    ids = [c["id"] for c in (await generate(sim, "lofi beats")).json()]
    sim.time.advance(10)
    streaming = await clips(sim, ids)
    assert all(c["status"] == "streaming" and c["audio_url"].endswith(".wav") for c in streaming)


async def test_sim_fail_errors_after_some_progress(sim: Sim) -> None:
    ids = [c["id"] for c in (await generate(sim, "a sad song sim:fail")).json()]
    sim.time.advance(10)
    assert {c["status"] for c in await clips(sim, ids)} == {"streaming"}
    sim.time.advance(6)
    failed = await clips(sim, ids)
    assert {c["status"] for c in failed} == {"error"}
    assert "sim:fail" in failed[0]["error_message"]


async def test_sim_slow_takes_ten_times_longer(sim: Sim) -> None:
    ids = [c["id"] for c in (await generate(sim, "an epic sim:slow")).json()]
    sim.time.advance(31)
    assert {c["status"] for c in await clips(sim, ids)} == {"queued"}
    sim.time.advance(270)
    assert {c["status"] for c in await clips(sim, ids)} == {"complete"}


async def test_sim_429_once_then_accepted(sim: Sim) -> None:
    first = await generate(sim, "a jingle sim:429")
    assert first.status_code == 429 and first.headers["retry-after"] == "1" and first.json()["error"]
    assert (await generate(sim, "a jingle sim:429")).status_code == 200


async def test_sim_reject_every_time(sim: Sim) -> None:
    for _ in range(2):
        response = await generate(sim, "nope sim:reject")
        assert response.status_code == 500 and "error" in response.json()


async def test_refusals_and_unknown_ids(sim: Sim) -> None:
    assert (await generate(sim, "  ")).status_code == 400
    assert (await sim.client.post("/suno/api/generate", content=b"[1]")).status_code == 400
    unknown = await sim.client.get("/suno/api/get", params={"ids": "not-a-clip"})
    assert unknown.status_code == 404 and "not-a-clip" in unknown.json()["error"]


async def test_get_without_ids_lists_the_feed(sim: Sim) -> None:
    ids = [c["id"] for c in (await generate(sim, "first")).json()]
    feed = (await sim.client.get("/suno/api/get")).json()
    assert sorted(c["id"] for c in feed) == sorted(ids)


async def test_wait_audio_answers_once_streaming(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as client:
        body = {"prompt": "wait for it", "make_instrumental": False, "wait_audio": True}
        answered = (await client.post("/suno/api/generate", json=body)).json()
    assert all(c["status"] in ("streaming", "complete") and c["audio_url"] for c in answered)
