"""The providers' own SDKs (lumaai, runwayml, fal-client) talk to the simulator unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
import fal_client
import fal_client.client
import lumaai
import pytest
import runwayml
import runwayml.lib.polling
from lumaai.types import Generation, GenerationListResponse
from lumaai.types.generation import RequestGenerationRequest, RequestImageGenerationRequest

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

    async with runwayml.AsyncRunwayML(
        api_key="k", base_url=live_url + "/runway", runway_version="2020-01-01"
    ) as old:
        with pytest.raises(runwayml.BadRequestError):
            await old.text_to_video.create(model="gen4.5", prompt_text="x", ratio="1280:720", duration=5)


@pytest.fixture
def fal_queue(live_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """fal-client builds queue URLs from this module constant (its host comes from FAL_QUEUE_RUN_HOST)."""
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", live_url + "/fal/")
    return live_url


async def test_fal_client(fal_queue: str) -> None:
    client = fal_client.AsyncClient(key="fal-key")
    model = "fal-ai/pika/v2.2/text-to-video"
    updates: list[fal_client.Status] = []
    result = await client.subscribe(
        model,
        {"prompt": "a fox", "duration": 5},
        with_logs=True,
        interval=POLL,
        on_queue_update=updates.append,
    )
    assert result["video"]["url"].endswith(".webm") and result["video"]["content_type"] == "video/webm"
    assert isinstance(updates[-1], fal_client.Completed) and updates[-1].logs

    handle = await client.submit(model, {"prompt": "a second fox"})
    rebuilt = await client.get_handle(model, handle.request_id)  # fal-client's own URL layout
    assert (rebuilt.status_url, rebuilt.response_url, rebuilt.cancel_url) == (
        handle.status_url,
        handle.response_url,
        handle.cancel_url,
    )
    assert isinstance(
        await client.status(model, handle.request_id), fal_client.Queued | fal_client.InProgress
    )
    await client.cancel(model, handle.request_id)
    cancelled = await handle.status()
    assert isinstance(cancelled, fal_client.Completed) and cancelled.error

    failing = await client.submit(model, {"prompt": "a fox sim:fail"})
    with pytest.raises(fal_client.client.FalClientHTTPError) as failure:
        await failing.get(interval=POLL)
    assert failure.value.status_code == 422 and failure.value.error_type == "generation_failed"

    retried = await client.submit(model, {"prompt": "busy sim:429"})  # fal-client retries the 429 itself
    assert retried.request_id
