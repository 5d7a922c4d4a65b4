"""The asynchronous SDK client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from httpx_sse import EventSource, aconnect_sse

from gateway_client.errors import GatewayError, JobFailed, ShuttingDown, _raise_for_error
from gateway_client.events import JobEvent

ModelList = list[dict[str, Any]]  # a name for it: the client's own list() method shadows `list`


class AsyncGateway:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_reconnects: int = 10,
        reconnect_delay: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("GATEWAY_URL") or "http://127.0.0.1:8000"
        api_key = api_key or os.environ.get("GATEWAY_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.max_reconnects = max_reconnects
        self.reconnect_delay = reconnect_delay
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, read=None),  # streams are quiet between heartbeats
            transport=transport,
        )

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        await _raise_for_error(response)
        return response.json()

    @staticmethod
    def _body(
        model: str, prompt: str, style: str | None, options: dict[str, Any] | None, callback_url: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        if style is not None:
            body["style"] = style
        if options:
            body["options"] = options
        if callback_url:
            body["callback_url"] = callback_url
        return body

    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        style: str | None = None,
        options: dict[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[JobEvent]:
        """POST /api/generate and yield its events; a dropped connection resumes where it stopped."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = self._body(model, prompt, style, options, callback_url)
        job_id, last_id = None, 0
        hints = _Hints()
        try:
            async with aconnect_sse(self.http, "POST", "/api/generate", json=body, headers=headers) as source:
                await _raise_for_error(source.response)
                async for event in _job_events(source, hints):
                    job_id, last_id = event.job_id, event.id
                    yield event
                    if event.terminal:
                        return
        except httpx.TransportError:
            if job_id is None:
                raise
        if job_id is not None:
            await anyio.sleep(hints.retry_seconds)  # the server ended the stream: come back as it said
            async for event in self.events(job_id, last_event_id=last_id):
                yield event

    async def events(self, job_id: str, *, last_event_id: int = 0) -> AsyncIterator[JobEvent]:
        """The job's events after `last_event_id` (replay, then live), reconnecting as EventSource does."""
        failures = 0
        hints = _Hints()
        while True:
            try:
                async with aconnect_sse(
                    self.http,
                    "GET",
                    f"/api/generations/{job_id}/events",
                    headers={"Last-Event-ID": str(last_event_id)},
                ) as source:
                    if source.response.status_code == 204:
                        return  # nothing after the terminal event
                    await _raise_for_error(source.response)
                    async for event in _job_events(source, hints):
                        last_event_id, failures = event.id, 0
                        yield event
                        if event.terminal:
                            return
                # Ended before the terminal event (the replica is shutting down): reconnect after its
                # `retry:` hint, as EventSource does.
                await anyio.sleep(hints.retry_seconds)
            except (httpx.TransportError, ShuttingDown) as exc:
                failures += 1
                if failures > self.max_reconnects:
                    raise
                wait = exc.retry_after if isinstance(exc, ShuttingDown) else self.reconnect_delay
                await anyio.sleep(wait)

    async def run(self, model: str, prompt: str, **kwargs: Any) -> JobEvent:
        """Generate and wait: the `Completed` event, or JobFailed carrying the `Error`/`Canceled` one."""
        async for event in self.generate(model, prompt, **kwargs):
            if event.status == "Completed":
                return event
            if event.terminal:
                raise JobFailed(200, {"code": event.data.get("code", event.status.lower()), **event.data})
        raise GatewayError(0, {"code": "stream_ended", "message": "The stream ended without a result."})

    async def create(
        self,
        model: str,
        prompt: str,
        *,
        style: str | None = None,
        options: dict[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        job: dict[str, Any] = await self._json(
            "POST",
            "/api/generations",
            json=self._body(model, prompt, style, options, callback_url),
            headers=headers,
        )
        return job

    async def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._json("GET", f"/api/generations/{job_id}")
        return job

    async def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._json("POST", f"/api/generations/{job_id}/cancel")
        return job

    async def list(self, *, status: str | None = None, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        page: dict[str, Any] = await self._json("GET", "/api/generations", params=params)
        return page

    async def balance(self) -> int:
        return int((await self._json("GET", "/api/balance"))["token_balance"])

    async def models(self) -> ModelList:
        models: ModelList = (await self._json("GET", "/api/models"))["models"]
        return models

    async def quote(self, model: str, prompt: str, **kwargs: Any) -> dict[str, Any]:
        body = self._body(model, prompt, kwargs.get("style"), kwargs.get("options"), None)
        quote: dict[str, Any] = await self._json("POST", "/api/quote", json=body)
        return quote

    async def download(
        self, url: str, path: str | Path, *, on_progress: Callable[[int, int | None], None] | None = None
    ) -> Path:
        """Stream a result to `path` (a signed link needs no key; sent without one)."""
        target = Path(path)
        # follows redirects: results kept on S3 are served by a redirect to a presigned URL
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), follow_redirects=True) as plain:
            async with plain.stream("GET", url) as response:
                await _raise_for_error(response)
                total = (
                    int(response.headers["content-length"]) if "content-length" in response.headers else None
                )
                done = 0
                async with await anyio.open_file(target, "wb") as out:
                    async for chunk in response.aiter_bytes(1 << 16):
                        await out.write(chunk)
                        done += len(chunk)
                        if on_progress:
                            on_progress(done, total)
        return target


class _Hints:
    """What a stream told its client besides events: the `retry:` reconnection time."""

    retry_seconds = 0.0


async def _job_events(source: EventSource, hints: _Hints) -> AsyncIterator[JobEvent]:
    """The events of one SSE response, typed (comments and empty data skipped)."""
    async for sse in source.aiter_sse():
        if sse.retry is not None:
            hints.retry_seconds = sse.retry / 1000
        if sse.data:
            yield JobEvent.from_sse(sse)
