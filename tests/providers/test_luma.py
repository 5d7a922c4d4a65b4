"""The Luma adapter against pytest-httpx, with bodies shaped like the lumaai SDK's Generation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from providers.base import (
    Failed,
    MalformedUpstream,
    OptionError,
    Progress,
    Queued,
    Submitted,
    Succeeded,
    UpstreamError,
)
from providers.luma import LumaProvider
from tests.providers.conftest import (
    POLL_INTERVAL,
    RecordingSleep,
    drain,
    rate_limited,
    retries_run_out,
    settings,
    task,
)

BASE = "http://127.0.0.1:9101/dream-machine/v1"
VIDEO = "https://storage.cdn-luma.com/dream_machine/gen-1/video.mp4"
OPTIONS = {"aspect_ratio": "16:9", "resolution": "720p", "duration": "5s", "loop": False}

pytestmark = pytest.mark.anyio


def generation(state: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "gen-1",
        "state": state,
        "failure_reason": None,
        "generation_type": "video",
        "model": "ray-2",
        "assets": None,
        "created_at": "2026-11-23T08:00:00.000Z",
        "request": {"model": "ray-2", "prompt": "a lighthouse at dusk", "generation_type": "video"},
    }
    body.update(fields)
    return body


@pytest.fixture
def luma(sleep: RecordingSleep) -> LumaProvider:
    return LumaProvider(settings("luma", BASE, extra={"typical_seconds": 40}), sleep=sleep)


def poll(httpx_mock: HTTPXMock, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        httpx_mock.add_response(method="GET", url=f"{BASE}/generations/gen-1", json=body)


async def test_success_maps_queued_and_dreaming_to_updates(
    luma: LumaProvider, httpx_mock: HTTPXMock, sleep: RecordingSleep
) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/generations/video", status_code=201, json=generation("queued")
    )
    poll(
        httpx_mock,
        generation("queued"),
        generation("queued"),
        generation("dreaming"),
        generation("dreaming"),
        generation("completed", assets={"video": VIDEO, "image": None, "progress_video": None}),
    )

    updates = await drain(luma, luma.prepare(task(options=OPTIONS)))

    assert updates == [
        Submitted("gen-1"),
        Queued(),
        Progress(0, "dreaming: 0 s so far, typically about 40 s"),
        Progress(25, "dreaming: 10 s so far, typically about 40 s"),
        Succeeded([VIDEO], "video/mp4"),
    ]
    submit = httpx_mock.get_requests(method="POST")[0]
    assert submit.headers["Authorization"] == "Bearer test-key"
    assert json.loads(submit.content) == {"prompt": "a lighthouse at dusk", "model": "ray-2", **OPTIONS}
    assert sleep.calls == [POLL_INTERVAL] * 4


async def test_dreaming_estimate_never_reaches_100(luma: LumaProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, *[generation("dreaming")] * 8, generation("completed", assets={"video": VIDEO}))

    updates = await drain(luma, task(upstream_id="gen-1"))

    percents = [u.percent for u in updates if isinstance(u, Progress)]
    assert percents == [0, 25, 50, 75, 95, 95, 95, 95]
    assert updates[-1] == Succeeded([VIDEO], "video/mp4")


async def test_failed_state_carries_failure_reason(luma: LumaProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/generations/video", status_code=201, json=generation("queued")
    )
    poll(
        httpx_mock,
        generation("failed", failure_reason="400: prompt not allowed because advanced moderation failed"),
    )

    updates = await drain(luma, task())

    assert updates == [
        Submitted("gen-1"),
        Failed("400: prompt not allowed because advanced moderation failed"),
    ]


async def test_completed_without_video_fails_cleanly(luma: LumaProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, generation("completed", assets={"video": None}))

    updates = await drain(luma, task(upstream_id="gen-1"))

    assert updates == [Failed("Luma completed the generation without a video URL.", "upstream_malformed")]


async def test_image_endpoint_uses_photon_and_returns_the_image(
    luma: LumaProvider, httpx_mock: HTTPXMock
) -> None:
    image = "https://storage.cdn-luma.com/dream_machine/gen-1/image.jpg"
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/generations/image",
        status_code=201,
        json=generation("queued", generation_type="image"),
    )
    poll(httpx_mock, generation("completed", generation_type="image", assets={"image": image}))

    updates = await drain(luma, task(options={"aspect_ratio": "1:1"}, params={"endpoint": "image"}))

    assert updates == [Submitted("gen-1"), Succeeded([image], "image/jpeg")]
    body = json.loads(httpx_mock.get_requests(method="POST")[0].content)
    assert body == {"prompt": "a lighthouse at dusk", "model": "photon-1", "aspect_ratio": "1:1"}


async def test_429_is_retried_after_the_upstream_says(
    luma: LumaProvider, httpx_mock: HTTPXMock, sleep: RecordingSleep
) -> None:
    rate_limited(
        httpx_mock, "POST", f"{BASE}/generations/video", json={"detail": "Too many concurrent generations"}
    )
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/generations/video", status_code=201, json=generation("queued")
    )
    poll(httpx_mock, generation("completed", assets={"video": VIDEO}))

    updates = await drain(luma, task())

    assert updates == [Submitted("gen-1"), Succeeded([VIDEO], "video/mp4")]
    assert sleep.calls == [3.0]


async def test_5xx_until_retries_run_out_raises_retryable(luma: LumaProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="GET", url=f"{BASE}/generations/gen-1", status_code=503, text="upstream busy", is_reusable=True
    )

    error = await retries_run_out(luma, task(upstream_id="gen-1"), httpx_mock)

    assert error.status == 503


async def test_final_4xx_on_submit_carries_the_upstream_message(
    luma: LumaProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/generations/video",
        status_code=400,
        json={"detail": "Invalid aspect ratio"},
    )

    with pytest.raises(UpstreamError) as raised:
        await drain(luma, task())

    assert raised.value.retryable is False
    assert "Invalid aspect ratio" in raised.value.message
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (json.dumps(generation("exploding")), "state"),
        ("<html>gateway error</html>", "body"),
        (json.dumps({"state": "queued"}), "id"),
    ],
)
async def test_malformed_body_is_malformed_upstream(
    luma: LumaProvider, httpx_mock: HTTPXMock, body: str, where: str
) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/generations/gen-1", text=body)

    with pytest.raises(MalformedUpstream) as raised:
        await drain(luma, task(upstream_id="gen-1"))

    assert "unexpected body" in raised.value.message
    assert where in raised.value.message


async def test_reattach_polls_without_submitting(luma: LumaProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, generation("dreaming"), generation("completed", assets={"video": VIDEO}))

    updates = await drain(luma, task(upstream_id="gen-1"))

    assert updates[-1] == Succeeded([VIDEO], "video/mp4")
    assert not any(isinstance(u, Submitted) for u in updates)
    assert httpx_mock.get_requests(method="POST") == []


async def test_cancel_deletes_a_running_generation(luma: LumaProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, generation("dreaming"))
    httpx_mock.add_response(method="DELETE", url=f"{BASE}/generations/gen-1", status_code=204)

    assert await luma.cancel("gen-1") is True


async def test_cancel_of_a_finished_generation_deletes_nothing(
    luma: LumaProvider, httpx_mock: HTTPXMock
) -> None:
    poll(httpx_mock, generation("completed", assets={"video": VIDEO}))

    assert await luma.cancel("gen-1") is False
    assert httpx_mock.get_requests(method="DELETE") == []


async def test_cancel_of_an_unknown_generation_is_false(luma: LumaProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="GET", url=f"{BASE}/generations/gen-1", status_code=404, json={"detail": "Not found"}
    )

    assert await luma.cancel("gen-1") is False


def test_prepare_applies_a_style_and_refuses_video_options_for_images(luma: LumaProvider) -> None:
    assert luma.prepare(task(style_label="Claymation")).prompt == "a lighthouse at dusk, Claymation style"

    with pytest.raises(OptionError) as raised:
        luma.prepare(task(options={"duration": "9s"}, params={"endpoint": "image"}))
    assert raised.value.option == "duration"
