"""The Python SDK against the app: typed events, typed errors, and resuming a dropped stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway_client import (
    AsyncGateway,
    InsufficientTokens,
    InvalidRequest,
    JobFailed,
    NotFound,
    ProviderUnavailable,
    ShuttingDown,
    Unauthorized,
)
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


class CutAfter(httpx.AsyncBaseTransport):
    """Passes requests to the app, but breaks the first generate stream after `keep` bytes."""

    def __init__(self, inner: httpx.AsyncBaseTransport, keep: int) -> None:
        self.inner = inner
        self.keep = keep
        self.cut = 0
        self.resumed_from: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            self.resumed_from.append(request.headers.get("last-event-id", ""))
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/api/generate" or self.cut:
            return response
        self.cut += 1
        body = await response.aread()
        keep = self.keep

        class Broken(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield body[:keep]
                raise httpx.RemoteProtocolError("peer closed connection")

        return httpx.Response(response.status_code, headers=response.headers, stream=Broken())


def sdk(harness: Harness, key: str, transport: httpx.AsyncBaseTransport | None = None) -> AsyncGateway:
    return AsyncGateway(
        "http://testserver",
        key,
        transport=transport or httpx.ASGITransport(app=harness.app),
        reconnect_delay=0,
    )


async def test_generate_yields_typed_events_and_downloads(harness: Harness, tmp_path: Path) -> None:
    key, _ = await harness.new_key(100)
    async with sdk(harness, key) as gw:
        events = [e async for e in gw.generate("echo", "a song")]
        assert [e.id for e in events] == [1, 2, 3, 4, 5]
        assert events[0].status == "Processing started" and events[-1].terminal and events[-1].progress == 100
        assert events[1].position == 2 and events[2].progress == 25
        assert await gw.balance() == 90
        listed = await gw.list(status="completed")
        assert listed["total"] == 1
        job = await gw.get(events[0].job_id)
        assert job["status"] == "completed"


async def test_events_expose_the_preview_url(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    async with sdk(harness, key) as gw:
        events = [e async for e in gw.generate("echo", "a song with a preview")]
    previews = [e.preview_url for e in events if e.preview_url]
    assert previews and all(url.startswith("http://testserver/files/") for url in previews)
    assert events[0].preview_url is None and events[-1].preview_url is None


async def test_dropped_stream_resumes_with_last_event_id(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    cutter = CutAfter(httpx.ASGITransport(app=harness.app), keep=300)
    async with sdk(harness, key, cutter) as gw:
        events = [e async for e in gw.generate("echo", "a song")]
    assert cutter.cut == 1 and cutter.resumed_from and cutter.resumed_from[0] != "0"
    assert [e.id for e in events] == [1, 2, 3, 4, 5]  # nothing lost, nothing twice
    assert events[-1].status == "Completed"


async def test_typed_errors(harness: Harness) -> None:
    key, _ = await harness.new_key(5)
    async with sdk(harness, key) as gw:
        with pytest.raises(InsufficientTokens) as low:
            async for _ in gw.generate("echo", "x"):
                pass
        assert low.value.code == "insufficient_tokens" and low.value.required == 10 and low.value.balance == 5
        with pytest.raises(InvalidRequest) as bad:
            await gw.create("nope", "x")
        assert bad.value.code == "unknown_model"
        with pytest.raises(NotFound):
            await gw.get("job_missing")
    async with sdk(harness, "gw_wrong") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.balance()


async def test_run_raises_job_failed(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    async with sdk(harness, key) as gw:
        with pytest.raises(JobFailed) as failed:
            await gw.run("echo", "fail please")
        assert failed.value.body["refunded"] is True
        assert (await gw.run("echo", "ok")).url


class Draining(httpx.AsyncBaseTransport):
    """A replica that is shutting down, then the app: the first create answers 503 shutting_down; so
    does the first events request, the second gets a stream with only a `retry:` hint; the rest pass."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.creates = self.events_requests = 0

    @staticmethod
    def refused(retry_after: int) -> httpx.Response:
        body = {"status": "Error", "message": "draining", "code": "shutting_down", "retry_after": retry_after}
        return httpx.Response(503, json=body, headers={"Retry-After": str(retry_after)})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            self.events_requests += 1
            if self.events_requests == 1:
                return self.refused(0)
            if self.events_requests == 2:
                return httpx.Response(
                    200, text="retry: 10\n\n", headers={"Content-Type": "text/event-stream"}
                )
        elif request.method == "POST" and request.url.path == "/api/generations":
            self.creates += 1
            if self.creates == 1:
                return self.refused(1)
        return await self.inner.handle_async_request(request)


async def test_events_come_back_after_a_draining_replica_and_a_create_it_refused_is_typed(
    harness: Harness,
) -> None:
    key, _ = await harness.new_key(100)
    draining = Draining(httpx.ASGITransport(app=harness.app))
    async with sdk(harness, key, draining) as gw:
        with pytest.raises(ShuttingDown) as refused:
            await gw.create("echo", "a song")
        assert refused.value.retry_after == 1 and isinstance(refused.value, ProviderUnavailable)
        job = await gw.create("echo", "a song")
        events = [e async for e in gw.events(job["id"])]
    assert draining.events_requests == 3  # refused, told to come back, then served
    assert [e.id for e in events] == [1, 2, 3, 4, 5] and events[-1].status == "Completed"
