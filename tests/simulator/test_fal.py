"""fal's queue for Pika: submit, IN_QUEUE → IN_PROGRESS → COMPLETED, result, cancel; read by fal-client."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fal_client.client import Completed, InProgress, Queued, _BaseRequestHandle

from tests.simulator.conftest import Sim

pytestmark = pytest.mark.anyio

MODEL = "fal-ai/pika/v2.2/text-to-video"
AUTH = {"Authorization": "Key fal-test-key"}


async def submit(sim: Sim, prompt: str, model: str = MODEL) -> httpx.Response:
    body = {"prompt": prompt, "aspect_ratio": "16:9", "resolution": "720p", "duration": 5, "seed": 7}
    return await sim.client.post(f"/fal/{model}", json=body, headers=AUTH)


async def fetch(sim: Sim, method: str, url: str, **params: Any) -> httpx.Response:
    return await sim.client.request(method, url, params=params, headers=AUTH)


def parse(body: dict[str, Any]) -> Any:
    """fal-client's own status parser."""
    handle = _BaseRequestHandle(
        body["request_id"], body["response_url"], body["status_url"], body["cancel_url"]
    )
    return handle._parse_status(body)


async def test_queue_life_in_fal_url_layout(sim: Sim) -> None:
    response = await submit(sim, "a fox in the snow")
    assert response.status_code == 200
    handle = response.json()
    rid = handle["request_id"]
    base = f"http://sim.test/fal/fal-ai/pika/requests/{rid}"  # the app id, not the full endpoint path
    assert handle["response_url"] == base and handle["status_url"] == base + "/status"
    assert handle["cancel_url"] == base + "/cancel" and handle["status"] == "IN_QUEUE"

    queued = (await fetch(sim, "GET", handle["status_url"])).json()
    assert queued["status"] == "IN_QUEUE" and queued["queue_position"] == 2 and queued["response_url"] == base
    assert parse(queued) == Queued(position=2)
    sim.time.advance(7)
    assert (await fetch(sim, "GET", handle["status_url"])).json()["queue_position"] == 0

    sim.time.advance(10)
    quiet = (await fetch(sim, "GET", handle["status_url"], logs="false")).json()
    assert quiet["status"] == "IN_PROGRESS" and quiet["logs"] is None
    chatty = (await fetch(sim, "GET", handle["status_url"], logs=1)).json()
    assert chatty["logs"] and {"message", "level", "source", "timestamp"} <= set(chatty["logs"][0])
    assert isinstance(parse(chatty), InProgress)
    early = await fetch(sim, "GET", handle["response_url"])
    assert early.status_code == 400 and early.json()["detail"] and early.headers["x-fal-error-type"]

    sim.time.advance(30)
    done = (await fetch(sim, "GET", handle["status_url"], logs="true")).json()
    parsed = parse(done)
    assert isinstance(parsed, Completed) and parsed.error is None and parsed.metrics["inference_time"] > 0
    result = (await fetch(sim, "GET", handle["response_url"])).json()
    video = await sim.client.get(result["video"]["url"])
    assert result["video"]["content_type"] == video.headers["content-type"] == "video/webm"
    assert result["video"]["file_size"] == len(video.content)


async def test_sim_fail_completes_with_error(sim: Sim) -> None:
    handle = (await submit(sim, "a fox sim:fail")).json()
    sim.time.advance(21)
    status = (await fetch(sim, "GET", handle["status_url"], logs=1)).json()
    parsed = parse(status)
    assert isinstance(parsed, Completed) and parsed.error and "sim:fail" in parsed.error
    assert status["logs"][-1]["level"] == "ERROR"
    result = await fetch(sim, "GET", handle["response_url"])
    assert result.status_code == 422 and "sim:fail" in result.json()["detail"]
    assert result.headers["x-fal-error-type"] == "generation_failed"


async def test_cancel(sim: Sim) -> None:
    handle = (await submit(sim, "never mind")).json()
    sim.time.advance(1)
    cancelled = await fetch(sim, "PUT", handle["cancel_url"])
    assert cancelled.status_code == 202 and cancelled.json() == {"status": "CANCELLATION_REQUESTED"}
    status = parse((await fetch(sim, "GET", handle["status_url"])).json())
    assert isinstance(status, Completed) and status.error
    assert (await fetch(sim, "PUT", handle["cancel_url"])).status_code == 400
    assert (await fetch(sim, "GET", handle["response_url"])).status_code == 400

    finished = (await submit(sim, "all done")).json()
    sim.time.advance(41)
    too_late = await fetch(sim, "PUT", finished["cancel_url"])
    assert too_late.status_code == 400 and too_late.json()["status"] == "ALREADY_COMPLETED"


async def test_app_id_rule(sim: Sim) -> None:
    short = (await submit(sim, "x", "fal-ai/fast-sdxl")).json()
    assert short["status_url"].startswith("http://sim.test/fal/fal-ai/fast-sdxl/requests/")
    namespaced = (await submit(sim, "x", "workflows/someone/pipeline/step")).json()
    assert namespaced["response_url"].startswith("http://sim.test/fal/workflows/someone/pipeline/requests/")
    elsewhere = short["status_url"].replace("fast-sdxl", "pika")
    assert (await fetch(sim, "GET", elsewhere)).status_code == 404


async def test_errors_carry_type_header_and_detail(sim: Sim) -> None:
    unauthorized = await sim.client.post(f"/fal/{MODEL}", json={"prompt": "x"})
    assert unauthorized.status_code == 401 and unauthorized.headers["x-fal-error-type"]
    bearer = await sim.client.post(
        f"/fal/{MODEL}", json={"prompt": "x"}, headers={"Authorization": "Bearer k"}
    )
    assert bearer.status_code == 401
    missing = await sim.client.post(f"/fal/{MODEL}", json={"seed": 1}, headers=AUTH)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "prompt"]
    unknown = await fetch(sim, "GET", "/fal/fal-ai/pika/requests/nope/status")
    assert unknown.status_code == 404 and unknown.json()["detail"] and unknown.headers["x-fal-error-type"]
    assert (await fetch(sim, "GET", "/fal/fal-ai")).status_code == 404
    throttled = await submit(sim, "hot sim:429")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert throttled.headers["x-fal-error-type"] and throttled.json()["detail"]
    assert (await submit(sim, "hot sim:429")).status_code == 200
    for _ in range(2):
        rejected = await submit(sim, "bad sim:reject")
        assert rejected.status_code == 500 and rejected.json()["detail"]
