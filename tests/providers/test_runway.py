"""The Runway adapter against pytest-httpx, with task bodies shaped like runwayml 5.24's TaskRetrieveResponse."""

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
from providers.runway import RunwayProvider
from tests.providers.conftest import RecordingSleep, drain, rate_limited, retries_run_out, settings, task

BASE = "http://127.0.0.1:9103/v1"
TASK_URL = f"{BASE}/tasks/task-1"
OUTPUT = "https://dnznrvs05pmza.cloudfront.net/task-1/output.mp4?_jwt=abc"

pytestmark = pytest.mark.anyio


def runway_task(status: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "task-1", "status": status, "createdAt": "2026-11-23T08:00:00.000Z"}
    if status in ("PENDING", "THROTTLED", "RUNNING"):
        body["estimatedCost"] = {"credits": 60}
    else:
        body["cost"] = {"credits": 60 if status == "SUCCEEDED" else 0}
    body.update(fields)
    return body


@pytest.fixture
def runway(sleep: RecordingSleep) -> RunwayProvider:
    return RunwayProvider(settings("run", BASE), sleep=sleep)


def created(httpx_mock: HTTPXMock, path: str = "text_to_video") -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/{path}", json={"id": "task-1", "estimatedCost": {"credits": 60}}
    )


def poll(httpx_mock: HTTPXMock, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        httpx_mock.add_response(method="GET", url=TASK_URL, json=body)


async def test_success_maps_statuses_and_progress(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    created(httpx_mock)
    poll(
        httpx_mock,
        runway_task("PENDING"),
        runway_task("THROTTLED"),
        runway_task("RUNNING", progress=0.25),
        runway_task("RUNNING", progress=0.25),
        runway_task("RUNNING", progress=0.5),
        runway_task("RUNNING", progress=1.0),
        runway_task("SUCCEEDED", output=[OUTPUT]),
    )

    updates = await drain(runway, runway.prepare(task(options={"ratio": "1280:720", "duration": 5})))

    assert updates == [
        Submitted("task-1"),
        Queued(),
        Progress(25),
        Progress(50),
        Progress(99),
        Succeeded([OUTPUT], "video/mp4"),
    ]
    submit = httpx_mock.get_requests(method="POST")[0]
    assert submit.headers["Authorization"] == "Bearer test-key"
    assert submit.headers["X-Runway-Version"] == "2024-11-06"
    assert json.loads(submit.content) == {
        "model": "gen4.5",
        "promptText": "a lighthouse at dusk",
        "ratio": "1280:720",
        "duration": 5,
    }
    assert all(r.headers["X-Runway-Version"] == "2024-11-06" for r in httpx_mock.get_requests())


async def test_failed_carries_failure_and_code(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    poll(
        httpx_mock,
        runway_task(
            "FAILED",
            failure="Your prompt was flagged by content moderation.",
            failureCode="SAFETY.INPUT.TEXT",
        ),
    )

    updates = await drain(runway, task(upstream_id="task-1"))

    assert updates == [Failed("Your prompt was flagged by content moderation. (SAFETY.INPUT.TEXT)")]


async def test_cancelled_upstream_is_a_failure(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, runway_task("RUNNING", progress=0.1), runway_task("CANCELLED"))

    updates = await drain(runway, task(upstream_id="task-1"))

    assert updates == [Progress(10), Failed("cancelled upstream")]


async def test_image_to_video_sends_the_prompt_image(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    created(httpx_mock, "image_to_video")
    poll(httpx_mock, runway_task("SUCCEEDED", output=[OUTPUT]))
    options = {"ratio": "960:960", "duration": 5, "image_url": "https://example.com/first.png"}

    updates = await drain(runway, runway.prepare(task(options=options)))

    assert updates == [Submitted("task-1"), Succeeded([OUTPUT], "video/mp4")]
    body = json.loads(httpx_mock.get_requests(method="POST")[0].content)
    assert body["promptImage"] == "https://example.com/first.png"
    assert body["ratio"] == "960:960"


async def test_429_is_retried_after_the_upstream_says(
    runway: RunwayProvider, httpx_mock: HTTPXMock, sleep: RecordingSleep
) -> None:
    rate_limited(
        httpx_mock, "POST", f"{BASE}/text_to_video", json={"error": "You have exceeded the rate limit."}
    )
    created(httpx_mock)
    poll(httpx_mock, runway_task("SUCCEEDED", output=[OUTPUT]))

    updates = await drain(runway, task(options={"ratio": "720:1280", "duration": 10}))

    assert updates == [Submitted("task-1"), Succeeded([OUTPUT], "video/mp4")]
    assert sleep.calls == [3.0]


async def test_5xx_until_retries_run_out_raises_retryable(
    runway: RunwayProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="GET", url=TASK_URL, status_code=502, text="Bad Gateway", is_reusable=True)

    error = await retries_run_out(runway, task(upstream_id="task-1"), httpx_mock)

    assert error.status == 502


async def test_unknown_status_is_malformed_upstream(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, runway_task("EVAPORATED"))

    with pytest.raises(MalformedUpstream) as raised:
        await drain(runway, task(upstream_id="task-1"))

    assert "status" in raised.value.message


async def test_success_without_output_fails_cleanly(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, runway_task("SUCCEEDED", output=[]))

    updates = await drain(runway, task(upstream_id="task-1"))

    assert updates == [Failed("Runway reported success without an output URL.", "upstream_malformed")]


async def test_reattach_polls_without_submitting(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, runway_task("RUNNING", progress=0.5), runway_task("SUCCEEDED", output=[OUTPUT]))

    updates = await drain(runway, task(upstream_id="task-1"))

    assert updates == [Progress(50), Succeeded([OUTPUT], "video/mp4")]
    assert httpx_mock.get_requests(method="POST") == []


async def test_cancel_deletes_a_running_task(runway: RunwayProvider, httpx_mock: HTTPXMock) -> None:
    poll(httpx_mock, runway_task("RUNNING", progress=0.3))
    httpx_mock.add_response(method="DELETE", url=TASK_URL, status_code=204)

    assert await runway.cancel("task-1") is True


async def test_cancel_of_a_finished_task_keeps_its_output(
    runway: RunwayProvider, httpx_mock: HTTPXMock
) -> None:
    poll(httpx_mock, runway_task("SUCCEEDED", output=[OUTPUT]))

    assert await runway.cancel("task-1") is False
    assert httpx_mock.get_requests(method="DELETE") == []


def test_prepare_applies_the_style_suffix(runway: RunwayProvider) -> None:
    prepared = runway.prepare(task(style_label="Pixel Art", options={"ratio": "1280:720", "duration": 5}))

    assert prepared.prompt == "a lighthouse at dusk, Pixel Art style"


@pytest.mark.parametrize(
    ("model", "options", "field"),
    [
        ("gen4.5", {"ratio": "1920:1080", "duration": 5}, "ratio"),
        ("gen4.5", {"ratio": "1280:720", "duration": 12}, "duration"),
        ("veo3.1", {"ratio": "1920:1080", "duration": 5}, "duration"),
        ("veo3.1_fast", {"ratio": "960:960", "duration": 8}, "ratio"),
        ("gen4_turbo", {"ratio": "1280:720", "duration": 5}, "image_url"),
    ],
)
def test_prepare_refuses_what_the_model_cannot_take(
    runway: RunwayProvider, model: str, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(OptionError) as raised:
        runway.prepare(task(options=options, params={"upstream_model": model}))

    assert raised.value.option == field
    assert model in raised.value.message


def test_prepare_accepts_veo_ratios_and_durations(runway: RunwayProvider) -> None:
    options = {"ratio": "1920:1080", "duration": 8}
    runway.prepare(task(options=options, params={"upstream_model": "veo3.1"}))


def test_prepare_refuses_a_prompt_over_runways_limit(runway: RunwayProvider) -> None:
    with pytest.raises(OptionError) as raised:
        runway.prepare(
            task("x" * 990, style_label="Claymation", options={"ratio": "1280:720", "duration": 5})
        )

    assert raised.value.option == "prompt"


async def test_with_a_credit_rate_success_reports_the_seconds_produced(
    runway: RunwayProvider, httpx_mock: HTTPXMock
) -> None:
    created(httpx_mock)
    poll(httpx_mock, runway_task("SUCCEEDED", output=[OUTPUT], cost={"credits": 48}))
    prepared = runway.prepare(
        task(options={"ratio": "1280:720", "duration": 5}, params={"credits_per_second": 12})
    )
    updates = await drain(runway, prepared)
    assert updates[-1] == Succeeded([OUTPUT], "video/mp4", {"duration": 4.0})


async def test_without_a_credit_rate_nothing_is_reported(
    runway: RunwayProvider, httpx_mock: HTTPXMock
) -> None:
    created(httpx_mock)
    poll(httpx_mock, runway_task("SUCCEEDED", output=[OUTPUT]))
    updates = await drain(runway, runway.prepare(task(options={"ratio": "1280:720", "duration": 5})))
    assert isinstance(updates[-1], Succeeded) and updates[-1].produced == {}


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (401, {"error": "Invalid API key"}, "credential refused"),
        (403, {"error": "This organization is disabled"}, "account forbidden"),
        (400, {"error": "You do not have enough credits to run this task."}, "out of credit or quota"),
    ],
)
async def test_a_refused_credential_is_an_account_refusal_not_retried(
    runway: RunwayProvider, httpx_mock: HTTPXMock, status: int, body: dict[str, Any], reason: str
) -> None:
    httpx_mock.add_response(method="POST", url=f"{BASE}/text_to_video", status_code=status, json=body)
    with pytest.raises(UpstreamError) as raised:
        await drain(runway, runway.prepare(task(options={"ratio": "1280:720", "duration": 5})))
    assert raised.value.account_refused is not None and raised.value.account_refused.startswith(reason)
    assert raised.value.retryable is False and len(httpx_mock.get_requests()) == 1


async def test_an_ordinary_400_is_not_an_account_refusal(
    runway: RunwayProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/text_to_video", status_code=400, json={"error": "promptText is too long"}
    )
    with pytest.raises(UpstreamError) as raised:
        await drain(runway, runway.prepare(task(options={"ratio": "1280:720", "duration": 5})))
    assert raised.value.account_refused is None
