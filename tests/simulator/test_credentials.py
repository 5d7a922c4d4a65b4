"""Every simulated provider refuses the credential `invalid` with its own 401, and the simulator
records which credential each call carried."""

from __future__ import annotations

import httpx
import pytest

from providers.simulator import build_app
from tests.simulator.conftest import FakeTime

pytestmark = pytest.mark.anyio

RUNWAY_VERSION = {"X-Runway-Version": "2024-11-06"}


def simulator() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app(1.0, None, now=FakeTime()))
    return httpx.AsyncClient(transport=transport, base_url="http://sim.test")


@pytest.mark.parametrize(
    ("method", "path", "scheme", "headers", "body", "shape"),
    [
        ("POST", "/luma/dream-machine/v1/generations/video", "Bearer", {}, {"prompt": "x"}, "detail"),
        ("POST", "/runway/v1/text_to_video", "Bearer", RUNWAY_VERSION, {"promptText": "x"}, "error"),
        ("POST", "/fal/fal-ai/pika/v2.2/text-to-video", "Key", {}, {"prompt": "x"}, "detail"),
        ("POST", "/suno/api/generate", "Bearer", {}, {"prompt": "x"}, "error"),
        ("GET", "/suno/api/get?ids=x", "Bearer", {}, None, "error"),
    ],
)
async def test_the_invalid_credential_gets_the_providers_own_401(
    method: str, path: str, scheme: str, headers: dict[str, str], body: object, shape: str
) -> None:
    async with simulator() as client:
        response = await client.request(
            method, path, json=body, headers={"Authorization": f"{scheme} invalid", **headers}
        )
        assert response.status_code == 401
        assert shape in response.json()
        accepted = await client.request(
            method, path, json=body, headers={"Authorization": f"{scheme} good", **headers}
        )
        assert accepted.status_code != 401


async def test_suno_without_a_key_is_still_served() -> None:
    async with simulator() as client:
        response = await client.post("/suno/api/generate", json={"prompt": "a song"})
        assert response.status_code == 200


async def test_the_simulator_records_the_credential_of_each_call() -> None:
    async with simulator() as client:
        await client.post(
            "/luma/dream-machine/v1/generations/video",
            json={"prompt": "x"},
            headers={"Authorization": "Bearer b"},
        )
        await client.get("/suno/api/get?ids=x")
        calls = (await client.get("/calls")).json()["calls"]
    assert calls == [
        {"method": "POST", "path": "/luma/dream-machine/v1/generations/video", "credential": "b"},
        {"method": "GET", "path": "/suno/api/get", "credential": None},
    ]
