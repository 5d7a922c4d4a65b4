"""The providers' own SDKs (lumaai, runwayml) talk to the simulator unchanged; fal-client, which only
speaks HTTPS, is in test_tls.py."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import lumaai
import pytest
import runwayml
import runwayml.lib.polling
from lumaai.types import Generation, GenerationListResponse
from lumaai.types.generation import RequestGenerationRequest, RequestImageGenerationRequest

from providers.simulator import build_app
from tests.servers import serving
from tests.simulator.conftest import FakeTime

pytestmark = pytest.mark.anyio

POLL = 0.02


async def luma_until_done(luma: lumaai.AsyncLumaAI, generation: Generation) -> Generation:
    assert generation.id is not None
    with anyio.fail_after(5):
        while generation.state not in ("completed", "failed"):
            await anyio.sleep(POLL)
            generation = await luma.generations.get(generation.id)
    return generation


async def test_lumaai(live_url: str) -> None:
    async with lumaai.AsyncLumaAI(
        auth_token="luma-key", base_url=live_url + "/luma/dream-machine/v1"
    ) as luma:
        created = await luma.generations.create(
            model="ray-2",
            prompt="a slow pan",
            aspect_ratio="16:9",
            resolution="720p",
            duration="5s",
            loop=False,
        )
        assert created.state == "queued" and isinstance(created.created_at, datetime)
        assert isinstance(created.request, RequestGenerationRequest) and created.request.model == "ray-2"
        done = await luma_until_done(luma, created)
        assert done.state == "completed" and done.assets is not None and done.assets.video
        assert done.assets.video.endswith(".webm") and done.failure_reason is None

        image = await luma.generations.image.create(model="photon-1", prompt="a red fox", aspect_ratio="1:1")
        assert image.generation_type == "image" and isinstance(image.request, RequestImageGenerationRequest)
        image = await luma_until_done(luma, image)
        assert image.assets is not None and image.assets.image and image.assets.image.endswith(".png")

        failed = await luma_until_done(
            luma, await luma.generations.create(model="ray-2", prompt="x sim:fail")
        )
        assert failed.state == "failed" and failed.failure_reason

        listing = await luma.generations.list(limit=2)
        assert isinstance(listing, GenerationListResponse) and listing.count == 2 and listing.has_more

        assert done.id is not None
        await luma.generations.delete(done.id)
        with pytest.raises(lumaai.NotFoundError):
            await luma.generations.get(done.id)

    base_url = live_url + "/luma/dream-machine/v1"
    async with lumaai.AsyncLumaAI(auth_token="luma-key", base_url=base_url, max_retries=0) as luma:
        assert (await luma.credits.get()).credit_balance > 0
        assert (await luma.ping.check()).message
        with pytest.raises(lumaai.InternalServerError):
            await luma.generations.create(model="ray-2", prompt="x sim:reject")
        with pytest.raises(lumaai.RateLimitError):
            await luma.generations.create(model="ray-2", prompt="busy sim:429")
    async with lumaai.AsyncLumaAI(auth_token="invalid", base_url=base_url) as rejected:
        with pytest.raises(lumaai.AuthenticationError):
            await rejected.credits.get()
    not_bearer = {"Authorization": "Basic bHVtYQ=="}
    async with lumaai.AsyncLumaAI(auth_token="x", base_url=base_url, default_headers=not_bearer) as anonymous:
        with pytest.raises(lumaai.AuthenticationError):
            await anonymous.generations.create(model="ray-2", prompt="x")


async def test_runwayml(live_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runwayml.lib.polling, "POLL_TIME", POLL)  # the SDK waits 6 s between polls
    monkeypatch.setattr(runwayml.lib.polling, "POLL_JITTER", 0)
    # runwayml's base URL is the host: its paths carry the /v1 themselves.
    async with runwayml.AsyncRunwayML(api_key="runway-key", base_url=live_url + "/runway") as runway:
        created = await runway.text_to_video.create(
            model="gen4.5", prompt_text="a fox in the snow", ratio="1280:720", duration=5
        )
        seen = set()
        with anyio.fail_after(5):
            while (task := await runway.tasks.retrieve(created.id)).status != "SUCCEEDED":
                seen.add(task.status)
                await anyio.sleep(POLL)
        assert seen <= {"PENDING", "THROTTLED", "RUNNING"}
        assert isinstance(task, runwayml.types.task_retrieve_response.Succeeded)
        assert task.output[0].endswith(".webm") and task.cost.credits == 50

        waited = await (
            await runway.text_to_video.create(
                model="gen4.5", prompt_text="again", ratio="720:1280", duration=4
            )
        ).wait_for_task_output(timeout=5)
        assert waited.status == "SUCCEEDED"

        doomed = await runway.text_to_video.create(
            model="gen4.5", prompt_text="x sim:fail", ratio="1280:720", duration=5
        )
        with pytest.raises(runwayml.lib.polling.TaskFailedError) as failure:
            await doomed.wait_for_task_output(timeout=5)
        details: Any = failure.value.task_details
        assert details.status == "FAILED" and details.failure and details.failure_code

        await runway.tasks.delete(created.id)
        with pytest.raises(runwayml.NotFoundError):
            await runway.tasks.retrieve(created.id)

        veo = await runway.text_to_video.create(model="veo3.1", prompt_text="a fox", ratio="1920:1080")
        assert (await veo.wait_for_task_output(timeout=5)).status == "SUCCEEDED"  # duration is optional

        animated = await runway.image_to_video.create(
            model="gen4_turbo", prompt_image="https://example.com/fox.png", ratio="960:960", duration=5
        )
        done = await animated.wait_for_task_output(timeout=5)
        assert isinstance(done, runwayml.types.task_retrieve_response.Succeeded)
        assert done.output[0].endswith(".webm")
        with pytest.raises(runwayml.BadRequestError):  # gen4.5 needs a duration and a prompt text
            await runway.image_to_video.create(
                model="gen4.5", prompt_image="https://example.com/fox.png", ratio="960:960"
            )

        assert (await runway.organization.retrieve()).credit_balance > 0

    async with runwayml.AsyncRunwayML(
        api_key="k", base_url=live_url + "/runway", runway_version="2020-01-01"
    ) as old:
        with pytest.raises(runwayml.BadRequestError):
            await old.text_to_video.create(model="gen4.5", prompt_text="x", ratio="1280:720", duration=5)


async def test_runwayml_errors(live_url: str) -> None:
    """With retries off, the simulator's refusals surface as the SDK's own error types."""
    base_url = live_url + "/runway"
    async with runwayml.AsyncRunwayML(api_key="runway-key", base_url=base_url, max_retries=0) as runway:
        with pytest.raises(runwayml.InternalServerError) as rejected:
            await runway.text_to_video.create(
                model="gen4.5", prompt_text="x sim:reject", ratio="1280:720", duration=5
            )
        assert rejected.value.status_code == 500
        with pytest.raises(runwayml.RateLimitError) as throttled:
            await runway.text_to_video.create(
                model="gen4.5", prompt_text="busy sim:429", ratio="1280:720", duration=5
            )
        assert throttled.value.response.headers["retry-after"] == "1"
    async with runwayml.AsyncRunwayML(api_key="invalid", base_url=base_url) as rejected_key:
        with pytest.raises(runwayml.AuthenticationError):
            await rejected_key.organization.retrieve()


async def test_runwayml_cancels_a_running_task(tmp_path: Path) -> None:
    """On a hand-driven clock, so the task is surely RUNNING when the cancel lands."""
    time = FakeTime()
    async with (
        serving(build_app(1.0, tmp_path, now=time), lifespan="off") as url,
        runwayml.AsyncRunwayML(api_key="runway-key", base_url=url + "/runway") as runway,
    ):
        created = await runway.text_to_video.create(
            model="gen4.5", prompt_text="a long take", ratio="1280:720", duration=10
        )
        time.advance(20)  # past PENDING (and THROTTLED), well before the end of RUNNING
        running = await runway.tasks.retrieve(created.id)
        assert running.status == "RUNNING"
        await runway.tasks.delete(created.id)
        time.advance(120)  # long after it would have succeeded
        cancelled = await runway.tasks.retrieve(created.id)
        assert cancelled.status == "CANCELLED"
