"""Runway: tasks PENDING → (THROTTLED) → RUNNING → SUCCEEDED | FAILED | CANCELLED, in runwayml's types."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from runwayml.types import TaskRetrieveResponse
from runwayml.types.text_to_video_create_response import TextToVideoCreateResponse

from tests.simulator.conftest import Sim

pytestmark = pytest.mark.anyio

HEADERS = {"Authorization": "Bearer runway-test-key", "X-Runway-Version": "2024-11-06"}
BODY = {"model": "gen4.5", "promptText": "a fox in the snow", "ratio": "1280:720", "duration": 5}
TASK = TypeAdapter[Any](TaskRetrieveResponse)


async def create(sim: Sim, prompt: str, path: str = "/text_to_video", **extra: Any) -> httpx.Response:
    return await sim.client.post(
        f"/runway/v1{path}", json={**BODY, "promptText": prompt, **extra}, headers=HEADERS
    )


async def task(sim: Sim, task_id: str) -> dict[str, Any]:
    response = await sim.client.get(f"/runway/v1/tasks/{task_id}", headers=HEADERS)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    TASK.validate_python(body)  # strictly the SDK's shape for that status
    return body


async def test_task_life(sim: Sim) -> None:
    response = await create(sim, "a fox in the snow")
    assert response.status_code == 200
    created = TextToVideoCreateResponse.model_validate(response.json())
    pending = await task(sim, created.id)
    assert pending["status"] == "PENDING" and pending["estimatedCost"]["credits"] > 0
    sim.time.advance(5)
    assert (await task(sim, created.id))["status"] in ("PENDING", "THROTTLED")
    sim.time.advance(22)
    running = await task(sim, created.id)
    assert running["status"] == "RUNNING" and 0.4 < running["progress"] < 0.6
    sim.time.advance(20)
    succeeded = await task(sim, created.id)
    assert succeeded["status"] == "SUCCEEDED" and succeeded["cost"]["credits"] == 50
    assert succeeded["output"] == [f"http://sim.test/media/{created.id}.webm"]
    assert succeeded["createdAt"].endswith("Z")


async def test_sim_throttle_waits_for_capacity(sim: Sim) -> None:
    created = (await create(sim, "crowded sim:throttle")).json()
    sim.time.advance(5)
    assert (await task(sim, created["id"]))["status"] == "THROTTLED"


async def test_sim_fail(sim: Sim) -> None:
    created = (await create(sim, "doomed sim:fail")).json()
    sim.time.advance(23)
    failed = await task(sim, created["id"])
    assert failed["status"] == "FAILED" and "sim:fail" in failed["failure"] and failed["failureCode"]
    assert failed["cost"] == {"credits": 0}


async def test_cancel_then_delete(sim: Sim) -> None:
    created = (await create(sim, "changed my mind")).json()
    sim.time.advance(10)
    url = f"/runway/v1/tasks/{created['id']}"
    assert (await sim.client.delete(url, headers=HEADERS)).status_code == 204
    sim.time.advance(60)
    cancelled = await task(sim, created["id"])
    assert cancelled["status"] == "CANCELLED" and cancelled["cost"]["credits"] == 50  # running: charged
    assert (await sim.client.delete(url, headers=HEADERS)).status_code == 204
    assert (await sim.client.get(url, headers=HEADERS)).status_code == 404

    finished = (await create(sim, "keep nothing")).json()
    sim.time.advance(46)
    done_url = f"/runway/v1/tasks/{finished['id']}"
    assert (await sim.client.delete(done_url, headers=HEADERS)).status_code == 204
    gone = await sim.client.get(done_url, headers=HEADERS)
    assert gone.status_code == 404 and gone.json()["error"]


async def test_cancel_while_pending_is_refunded(sim: Sim) -> None:
    created = (await create(sim, "quick change")).json()
    await sim.client.delete(f"/runway/v1/tasks/{created['id']}", headers=HEADERS)
    assert (await task(sim, created["id"]))["cost"] == {"credits": 0}


async def test_image_to_video(sim: Sim) -> None:
    missing = await create(sim, "animate it", "/image_to_video")
    assert missing.status_code == 400 and missing.json()["issues"][0]["path"] == ["promptImage"]
    image = "data:image/png;base64,iVBORw0KGgo="
    assert (await create(sim, "animate it", "/image_to_video", promptImage=image)).status_code == 200


async def test_version_auth_and_validation(sim: Sim) -> None:
    unversioned = await sim.client.post(
        "/runway/v1/text_to_video", json=BODY, headers={"Authorization": "Bearer k"}
    )
    assert unversioned.status_code == 400 and "X-Runway-Version" in unversioned.json()["error"]
    wrong = {**HEADERS, "X-Runway-Version": "2023-01-01"}
    assert (await sim.client.post("/runway/v1/text_to_video", json=BODY, headers=wrong)).status_code == 400
    anonymous = await sim.client.get("/runway/v1/tasks/x", headers={"X-Runway-Version": "2024-11-06"})
    assert anonymous.status_code == 401
    invalid = await create(sim, "", duration=30)
    assert invalid.status_code == 400
    assert {tuple(i["path"]) for i in invalid.json()["issues"]} == {("promptText",), ("duration",)}
    assert (await sim.client.get("/runway/v1/tasks/unknown", headers=HEADERS)).status_code == 404


async def test_sim_429_and_reject(sim: Sim) -> None:
    throttled = await create(sim, "hurry sim:429")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert (await create(sim, "hurry sim:429")).status_code == 200
    for _ in range(2):
        assert (await create(sim, "no sim:reject")).status_code == 500


async def issues(sim: Sim, path: str, body: dict[str, Any]) -> set[tuple[str, ...]]:
    response = await sim.client.post(f"/runway/v1{path}", json=body, headers=HEADERS)
    if response.status_code == 200:
        return set()
    assert response.status_code == 400, response.text
    return {tuple(i["path"]) for i in response.json()["issues"]}


async def test_each_model_is_validated_as_the_sdk_declares_it(sim: Sim) -> None:
    veo = {"model": "veo3.1", "promptText": "a fox", "ratio": "1920:1080"}
    assert await issues(sim, "/text_to_video", veo) == set()  # duration is optional for veo3.1
    assert await issues(sim, "/text_to_video", {**veo, "model": "veo3.1_fast", "duration": 6}) == set()
    assert await issues(sim, "/text_to_video", {**veo, "duration": 5}) == {("duration",)}
    assert await issues(sim, "/text_to_video", {**veo, "ratio": "1104:832"}) == {("ratio",)}
    gen = {"model": "gen4.5", "promptText": "a fox", "ratio": "1280:720"}
    assert await issues(sim, "/text_to_video", gen) == {("duration",)}  # required for gen4.5
    assert await issues(sim, "/text_to_video", {**gen, "ratio": "1920:1080", "duration": 5}) == {("ratio",)}

    image = {"promptImage": "https://example.com/fox.png", "ratio": "960:960"}
    assert await issues(sim, "/image_to_video", {**image, "model": "gen4_turbo"}) == set()
    assert await issues(sim, "/image_to_video", {**image, "model": "gen4.5"}) == {
        ("promptText",),
        ("duration",),
    }
    assert await issues(sim, "/image_to_video", {**image, "model": "veo3.1"}) == {("ratio",)}
    assert await issues(sim, "/image_to_video", {"model": "gen4_turbo", "ratio": "960:960"}) == {
        ("promptImage",)
    }


async def test_the_organization(sim: Sim) -> None:
    from runwayml.types import OrganizationRetrieveResponse

    response = await sim.client.get("/runway/v1/organization", headers=HEADERS)
    assert response.status_code == 200
    assert OrganizationRetrieveResponse.model_validate(response.json()).credit_balance > 0
    rejected = await sim.client.get(
        "/runway/v1/organization", headers={**HEADERS, "Authorization": "Bearer invalid"}
    )
    assert rejected.status_code == 401 and rejected.json() == {
        "error": "Invalid API key: send Authorization: Bearer <key>"
    }
