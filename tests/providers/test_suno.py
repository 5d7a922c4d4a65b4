"""The suno adapter against recorded-shape suno-api answers (pytest-httpx)."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from providers.base import (
    Failed,
    MalformedUpstream,
    Preview,
    Progress,
    ProviderSettings,
    Queued,
    RetryPolicy,
    Submitted,
    Submitting,
    Succeeded,
    Task,
    UpstreamError,
)
from providers.suno import SunoProvider

pytestmark = pytest.mark.anyio
BASE = "http://suno.test"


def clip(clip_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": clip_id,
        "status": status,
        "audio_url": extra.pop("audio_url", ""),
        "title": "Summer",
        **extra,
    }


def provider(sleeps: list[float]) -> SunoProvider:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    settings = ProviderSettings("suno", BASE, api_key="k", poll_interval=0, retry=RetryPolicy(3, 0.1, 10))
    return SunoProvider(settings, sleep=sleep)


def task(upstream_id: str | None = None) -> Task:
    return Task("job_1", "suno", "a song", None, None, {"make_instrumental": False}, {}, upstream_id)


async def collect(adapter: SunoProvider, t: Task) -> list[Any]:
    return [update async for update in adapter.run(t) if not isinstance(update, Submitting)]


async def test_two_clips_to_complete_with_the_contract_order(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/api/generate", json=[clip("a", "submitted"), clip("b", "submitted")]
    )
    for statuses in (
        ("submitted", "queued"),
        ("queued", "queued"),
        ("streaming", "queued"),
        ("streaming", "streaming"),
    ):
        httpx_mock.add_response(
            method="GET",
            url=f"{BASE}/api/get?ids=a%2Cb",
            json=[clip("a", statuses[0]), clip("b", statuses[1])],
        )
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/api/get?ids=a%2Cb",
        json=[
            clip("a", "complete", audio_url="http://cdn/a.mp3"),
            clip("b", "complete", audio_url="http://cdn/b.mp3"),
        ],
    )
    updates = await collect(provider([]), task())
    assert updates[0] == Submitted("a,b")
    assert [type(u).__name__ for u in updates[1:]] == ["Queued", "Progress", "Succeeded"]
    assert updates[-1] == Succeeded(["http://cdn/a.mp3", "http://cdn/b.mp3"], "audio/mpeg")
    request = httpx_mock.get_requests()[0]
    assert request.headers["authorization"] == "Bearer k"
    assert request.read() == b'{"prompt":"a song","make_instrumental":false,"wait_audio":false}'


async def test_error_clip_fails_with_its_message(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/api/get?ids=a%2Cb",
        json=[clip("a", "error", error_message="moderated"), clip("b", "queued")],
    )
    updates = await collect(provider([]), task("a,b"))
    assert updates == [Failed("moderated")]  # re-attached: no submit
    assert all(r.method == "GET" for r in httpx_mock.get_requests())


async def test_429_then_success_honours_retry_after(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/api/generate", status_code=429, headers={"Retry-After": "3"}
    )
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/api/generate", json=[clip("a", "complete", audio_url="http://cdn/a")]
    )
    httpx_mock.add_response(
        method="GET", url=f"{BASE}/api/get?ids=a", json=[clip("a", "complete", audio_url="http://cdn/a")]
    )
    sleeps: list[float] = []
    updates = await collect(provider(sleeps), task())
    assert 3.0 in sleeps and isinstance(updates[-1], Succeeded)


async def test_5xx_until_retries_run_out(httpx_mock: HTTPXMock) -> None:
    for _ in range(3):
        httpx_mock.add_response(
            method="POST", url=f"{BASE}/api/generate", status_code=502, json={"error": "bad gateway"}
        )
    with pytest.raises(UpstreamError) as raised:
        await collect(provider([]), task())
    assert raised.value.retryable and raised.value.status == 502 and len(httpx_mock.get_requests()) == 3


async def test_malformed_body(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", url=f"{BASE}/api/generate", json={"clips": "nope"})
    with pytest.raises(MalformedUpstream):
        await collect(provider([]), task())


async def test_unknown_status_and_cancel(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/api/get?ids=a", json=[clip("a", "melting")])
    updates = await collect(provider([]), task("a"))
    assert isinstance(updates[0], Failed) and "melting" in updates[0].message
    assert await provider([]).cancel("a") is False  # suno-api has no cancel
    assert not isinstance(updates[0], Queued)


async def test_a_streaming_clips_audio_is_the_preview(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/api/generate", json=[clip("a", "submitted"), clip("b", "submitted")]
    )
    streaming = [
        clip("a", "streaming", audio_url="https://audiopipe.suno.ai/?item_id=a"),
        clip("b", "streaming", audio_url="https://audiopipe.suno.ai/?item_id=b"),
    ]
    httpx_mock.add_response(method="GET", url=f"{BASE}/api/get?ids=a%2Cb", json=streaming)
    done = [clip(c, "complete", audio_url=f"http://cdn/{c}.mp3") for c in "ab"]
    httpx_mock.add_response(method="GET", url=f"{BASE}/api/get?ids=a%2Cb", json=done)

    updates = await collect(provider([]), task())

    assert updates[1] == Progress(
        60, "streaming", Preview("audio/mpeg", url="https://audiopipe.suno.ai/?item_id=a")
    )
