"""Luma Dream Machine: generations queued → dreaming → completed | failed, listed and deleted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.simulator.conftest import Sim

pytestmark = pytest.mark.anyio

BASE = "/luma/dream-machine/v1"
AUTH = {"Authorization": "Bearer luma-test-key"}


async def create(sim: Sim, prompt: str, path: str = "/generations/video", **extra: Any) -> httpx.Response:
    body = {"prompt": prompt, "model": "ray-2", "aspect_ratio": "16:9", "resolution": "720p", **extra}
    return await sim.client.post(BASE + path, json=body, headers=AUTH)


async def get(sim: Sim, generation_id: str) -> dict[str, Any]:
    response = await sim.client.get(f"{BASE}/generations/{generation_id}", headers=AUTH)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_video_generation_life(sim: Sim) -> None:
    response = await create(sim, "a slow pan over a misty forest", duration="5s", loop=False)
    assert response.status_code == 201
    created = response.json()
    assert created["state"] == "queued" and created["assets"] is None and created["failure_reason"] is None
    assert created["generation_type"] == "video" and created["model"] == "ray-2"
    assert created["request"]["prompt"] == "a slow pan over a misty forest"
    assert created["request"]["generation_type"] == "video" and created["request"]["duration"] == "5s"
    sim.time.advance(10)
    dreaming = await get(sim, created["id"])
    assert dreaming["state"] == "dreaming" and dreaming["assets"]["progress_video"].endswith(".webm")
    sim.time.advance(51)
    completed = await get(sim, created["id"])
    assert completed["state"] == "completed"
    assert completed["assets"]["video"] == f"http://sim.test/media/{created['id']}.webm"
    assert completed["assets"]["image"].endswith(".png")
    video = await sim.client.get(completed["assets"]["video"])
    assert video.headers["content-type"] == "video/webm"


async def test_image_generation_and_legacy_path(sim: Sim) -> None:
    image = (await create(sim, "a red fox", "/generations/image", model="photon-1")).json()
    assert image["generation_type"] == "image" and image["model"] == "photon-1"
    legacy = await create(sim, "old clients", "/generations")
    assert legacy.status_code == 201 and legacy.json()["generation_type"] == "video"
    sim.time.advance(16)
    done = await get(sim, image["id"])
    assert done["state"] == "completed" and done["assets"]["image"].endswith(".png")
    assert done["assets"]["video"] is None


async def test_sim_fail(sim: Sim) -> None:
    created = (await create(sim, "a storm sim:fail")).json()
    sim.time.advance(29)
    assert (await get(sim, created["id"]))["state"] == "dreaming"
    sim.time.advance(2)
    failed = await get(sim, created["id"])
    assert failed["state"] == "failed" and "sim:fail" in failed["failure_reason"] and failed["assets"] is None


async def test_sim_429_and_reject(sim: Sim) -> None:
    throttled = await create(sim, "busy sim:429")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert (await create(sim, "busy sim:429")).status_code == 201
    for _ in range(2):
        assert (await create(sim, "no sim:reject")).status_code == 500


async def test_auth_and_validation(sim: Sim) -> None:
    body = {"prompt": "x", "model": "ray-2"}
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        response = await sim.client.post(BASE + "/generations/video", json=body, headers=headers)
        assert response.status_code == 401 and response.json()["detail"]
    assert (await sim.client.get(BASE + "/generations/x")).status_code == 401
    bad_model = await create(sim, "x", model="photon-1")
    assert bad_model.status_code == 400 and "photon-1" in bad_model.json()["detail"]
    assert (await create(sim, "x", aspect_ratio="2:1")).status_code == 400
    assert (await create(sim, "")).status_code == 400


async def test_delete_and_unknown(sim: Sim) -> None:
    created = (await create(sim, "to be removed")).json()
    deleted = await sim.client.delete(f"{BASE}/generations/{created['id']}", headers=AUTH)
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await sim.client.get(f"{BASE}/generations/{created['id']}", headers=AUTH)
    assert gone.status_code == 404 and gone.json() == {"detail": "Generation not found"}
    assert (await sim.client.delete(f"{BASE}/generations/{created['id']}", headers=AUTH)).status_code == 404
    unknown = await sim.client.get(f"{BASE}/generations/0190b1c2-0000-7000-8000-000000000000", headers=AUTH)
    assert unknown.status_code == 404


async def test_list_newest_first(sim: Sim) -> None:
    ids = []
    for n in range(3):
        ids.append((await create(sim, f"clip {n}")).json()["id"])
        sim.time.advance(1)
    page = (await sim.client.get(BASE + "/generations", params={"limit": 2}, headers=AUTH)).json()
    assert [g["id"] for g in page["generations"]] == ids[::-1][:2]
    assert page["count"] == 2 and page["has_more"] is True and page["limit"] == 2 and page["offset"] == 0
    rest = (await sim.client.get(BASE + "/generations", params={"offset": 2}, headers=AUTH)).json()
    assert [g["id"] for g in rest["generations"]] == [ids[0]] and rest["has_more"] is False
    assert (await sim.client.get(BASE + "/generations?limit=x", headers=AUTH)).status_code == 400
