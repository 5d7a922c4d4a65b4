"""The Pika adapter against pytest-httpx, speaking fal's queue protocol as fal-client 1.0.3 reads it."""

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
)
from providers.pika import PikaProvider
from tests.providers.conftest import RecordingSleep, drain, rate_limited, retries_run_out, settings, task

BASE = "http://127.0.0.1:9102"
MODEL = "fal-ai/pika/v2.2/text-to-video"
# fal answers URLs under the app (owner/alias), not under the full model path.
REQUEST = f"{BASE}/fal-ai/pika/requests/req-1"
HANDLE = {
    "request_id": "req-1",
    "response_url": REQUEST,
    "status_url": f"{REQUEST}/status",
    "cancel_url": f"{REQUEST}/cancel",
}
UPSTREAM_ID = json.dumps(HANDLE, separators=(",", ":"))
VIDEO = "https://v3.fal.media/files/penguin/output.mp4"

pytestmark = pytest.mark.anyio


@pytest.fixture
def pika(sleep: RecordingSleep) -> PikaProvider:
    return PikaProvider(settings("pika", BASE, extra={"typical_seconds": 40}), sleep=sleep)


def submitted(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/{MODEL}", json={**HANDLE, "status": "IN_QUEUE", "queue_position": 2}
    )


def statuses(httpx_mock: HTTPXMock, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        httpx_mock.add_response(
            method="GET",
            url=f"{REQUEST}/status",
            status_code=200 if body["status"] == "COMPLETED" else 202,
            json={"request_id": "req-1", "response_url": REQUEST, **body},
        )


def result(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="GET",
        url=REQUEST,
        json={
            "video": {
                "url": VIDEO,
                "content_type": "video/mp4",
                "file_name": "output.mp4",
                "file_size": 4404019,
            }
        },
    )


async def test_success_maps_queue_position_and_progress(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    submitted(httpx_mock)
    statuses(
        httpx_mock,
        {"status": "IN_QUEUE", "queue_position": 2},
        {"status": "IN_QUEUE", "queue_position": 2},
        {"status": "IN_QUEUE", "queue_position": 0},
        {"status": "IN_PROGRESS", "logs": None},
        {"status": "IN_PROGRESS", "logs": None},
        {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 41.2}},
    )
    result(httpx_mock)
    options = {"aspect_ratio": "9:16", "resolution": "720p", "duration": 5, "negative_prompt": "blur"}

    updates = await drain(pika, pika.prepare(task(options=options)))

    first = updates[0]
    assert isinstance(first, Submitted)
    assert json.loads(first.upstream_id) == HANDLE  # enough to re-attach, by fal's own URLs
    assert updates[1:] == [
        Queued(3),
        Queued(1),
        Progress(0, "generating: 0 s so far, typically about 40 s"),
        Progress(25, "generating: 10 s so far, typically about 40 s"),
        Succeeded([VIDEO], "video/mp4"),
    ]
    submit = httpx_mock.get_requests(method="POST")[0]
    assert submit.headers["Authorization"] == "Key test-key"
    assert json.loads(submit.content) == {"prompt": "a lighthouse at dusk", **options}


async def test_completed_with_error_is_a_failure(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    statuses(
        httpx_mock,
        {"status": "COMPLETED", "error": "Request timed out while running", "error_type": "request_timeout"},
    )

    updates = await drain(pika, task(upstream_id=UPSTREAM_ID))

    assert updates == [Failed("Request timed out while running (request_timeout)")]


async def test_result_error_with_detail_is_a_failure(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    statuses(httpx_mock, {"status": "COMPLETED"})
    httpx_mock.add_response(
        method="GET",
        url=REQUEST,
        status_code=422,
        headers={"x-fal-error-type": "content_policy_violation"},
        json={
            "detail": [
                {"loc": ["body", "prompt"], "msg": "The content was flagged", "type": "content_policy"}
            ]
        },
    )

    updates = await drain(pika, task(upstream_id=UPSTREAM_ID))

    assert updates == [Failed("fal answered 422: The content was flagged (body.prompt)")]


async def test_429_is_retried_after_the_upstream_says(
    pika: PikaProvider, httpx_mock: HTTPXMock, sleep: RecordingSleep
) -> None:
    rate_limited(httpx_mock, "GET", f"{REQUEST}/status", json={"detail": "Rate limited"})
    statuses(httpx_mock, {"status": "COMPLETED"})
    result(httpx_mock)

    updates = await drain(pika, task(upstream_id=UPSTREAM_ID))

    assert updates == [Succeeded([VIDEO], "video/mp4")]
    assert sleep.calls == [3.0]


async def test_5xx_until_retries_run_out_raises_retryable(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/{MODEL}",
        status_code=500,
        json={"detail": "Internal error"},
        is_reusable=True,
    )

    error = await retries_run_out(pika, task(), httpx_mock)

    assert "Internal error" in error.message


async def test_unknown_status_is_malformed_upstream(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    statuses(httpx_mock, {"status": "EXPLODED"})

    with pytest.raises(MalformedUpstream) as raised:
        await drain(pika, task(upstream_id=UPSTREAM_ID))

    assert "status" in raised.value.message


async def test_queue_urls_on_another_host_are_refused(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    elsewhere = "https://collector.example/requests/req-1"
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/{MODEL}",
        json={**HANDLE, "status_url": f"{elsewhere}/status"},
    )

    with pytest.raises(MalformedUpstream) as raised:
        await drain(pika, task())

    assert "collector.example" in raised.value.message


async def test_reattach_follows_the_stored_urls_without_submitting(
    pika: PikaProvider, httpx_mock: HTTPXMock
) -> None:
    statuses(httpx_mock, {"status": "IN_PROGRESS"}, {"status": "COMPLETED"})
    result(httpx_mock)

    updates = await drain(pika, task(upstream_id=UPSTREAM_ID))

    assert updates[-1] == Succeeded([VIDEO], "video/mp4")
    assert httpx_mock.get_requests(method="POST") == []


async def test_reattach_with_a_foreign_upstream_id_is_malformed(pika: PikaProvider) -> None:
    with pytest.raises(MalformedUpstream):
        await drain(pika, task(upstream_id="req-1"))


async def test_cancel_while_queued_is_accepted(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="PUT", url=f"{REQUEST}/cancel", status_code=202, json={"status": "CANCELLATION_REQUESTED"}
    )

    assert await pika.cancel(UPSTREAM_ID) is True


async def test_cancel_after_completion_is_false(pika: PikaProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="PUT", url=f"{REQUEST}/cancel", status_code=400, json={"status": "ALREADY_COMPLETED"}
    )

    assert await pika.cancel(UPSTREAM_ID) is False


def test_prepare_applies_the_style_suffix(pika: PikaProvider) -> None:
    prepared = pika.prepare(task(style_label="Claymation", options={"duration": 5}))

    assert prepared.prompt == "a lighthouse at dusk, Claymation style"
    assert prepared.options == {"duration": 5}


def test_prepare_refuses_an_image_the_model_cannot_take(pika: PikaProvider) -> None:
    with pytest.raises(OptionError) as raised:
        pika.prepare(task(options={"image_url": "https://example.com/a.png"}))
    assert raised.value.option == "image_url"

    with pytest.raises(OptionError) as raised:
        pika.prepare(task(params={"model_path": "fal-ai/pika/v2.2/image-to-video"}))
    assert raised.value.option == "image_url"


async def test_image_to_video_sends_the_image_and_no_aspect_ratio(
    pika: PikaProvider, httpx_mock: HTTPXMock
) -> None:
    path = "fal-ai/pika/v2.2/image-to-video"
    httpx_mock.add_response(method="POST", url=f"{BASE}/{path}", json=HANDLE)
    statuses(httpx_mock, {"status": "COMPLETED"})
    result(httpx_mock)
    options = {"image_url": "https://example.com/a.png", "aspect_ratio": "16:9", "duration": 5}

    await drain(pika, pika.prepare(task(options=options, params={"model_path": path})))

    body = json.loads(httpx_mock.get_requests(method="POST")[0].content)
    assert body == {"prompt": "a lighthouse at dusk", "image_url": "https://example.com/a.png", "duration": 5}
