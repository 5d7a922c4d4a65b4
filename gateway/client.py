"""The Python SDK: async and sync clients for the gateway, typed events and typed errors.

    from gateway.client import Gateway
    with Gateway("http://127.0.0.1:8000", "gw_...") as gw:
        for event in gw.generate("suno", "an upbeat pop song"):
            print(event.status, event.progress)

`generate()` and `events()` resume by themselves with `Last-Event-ID` when the connection drops.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from httpx_sse import ServerSentEvent, aconnect_sse

T = TypeVar("T")
ModelList = list[dict[str, Any]]  # a name for it: the clients' own list() method shadows `list`
TERMINAL = frozenset({"Completed", "Error", "Canceled"})


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobEvent:
    """One event of a job's stream; `data` holds every field the gateway sent."""

    id: int
    status: str
    job_id: str
    data: dict[str, Any] = field(repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def progress(self) -> int | None:
        value = self.data.get("progress")
        return int(value) if value is not None else (100 if self.status == "Completed" else None)

    @property
    def position(self) -> int | None:
        value = self.data.get("position")
        return int(value) if value is not None else None

    @property
    def url(self) -> str | None:
        return self.data.get("url")

    @property
    def urls(self) -> list[str]:
        return list(self.data.get("urls") or ([self.url] if self.url else []))

    @property
    def message(self) -> str | None:
        return self.data.get("message")

    @classmethod
    def from_sse(cls, sse: ServerSentEvent) -> JobEvent:
        data = json.loads(sse.data)
        return cls(id=int(sse.id), status=data["status"], job_id=data["job_id"], data=data)


# --- errors -------------------------------------------------------------------------------------


class GatewayError(Exception):
    """An error answer from the gateway: `status` (HTTP), `code` (the contract's), `message`, `body`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.code: str = body.get("code", "unknown")
        self.message: str = body.get("message", "")
        super().__init__(f"{status} {self.code}: {self.message}")


class InvalidRequest(GatewayError):
    pass


class Unauthorized(GatewayError):
    pass


class Forbidden(GatewayError):
    pass


class NotFound(GatewayError):
    pass


class Conflict(GatewayError):
    pass


class InsufficientTokens(GatewayError):
    @property
    def required(self) -> int:
        return int(self.body.get("required", 0))

    @property
    def balance(self) -> int:
        return int(self.body.get("balance", 0))


class RateLimited(GatewayError):
    @property
    def retry_after(self) -> int:
        return int(self.body.get("retry_after", 1))


class ProviderUnavailable(GatewayError):
    pass


class JobFailed(GatewayError):
    """Raised by `run()` when a job ends with `Error` or `Canceled` (it was refunded)."""


BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: NotFound,
    418: InsufficientTokens,
    429: RateLimited,
    503: ProviderUnavailable,
}


async def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    try:
        body = response.json()
    except ValueError:
        body = {"code": "http_error", "message": response.text[:300]}
    if not isinstance(body, dict):
        body = {"code": "http_error", "message": str(body)[:300]}
    raise BY_STATUS.get(response.status_code, GatewayError)(response.status_code, body)


# --- async client -------------------------------------------------------------------------------


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
        try:
            async with aconnect_sse(self.http, "POST", "/api/generate", json=body, headers=headers) as source:
                await _raise_for_error(source.response)
                async for sse in source.aiter_sse():
                    if not sse.data:
                        continue
                    event = JobEvent.from_sse(sse)
                    job_id, last_id = event.job_id, event.id
                    yield event
                    if event.terminal:
                        return
        except httpx.TransportError:
            if job_id is None:
                raise
        if job_id is not None:
            async for event in self.events(job_id, last_event_id=last_id):
                yield event

    async def events(self, job_id: str, *, last_event_id: int = 0) -> AsyncIterator[JobEvent]:
        """The job's events after `last_event_id` (replay, then live), reconnecting as EventSource does."""
        failures = 0
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
                    async for sse in source.aiter_sse():
                        if not sse.data:
                            continue
                        event = JobEvent.from_sse(sse)
                        last_event_id, failures = event.id, 0
                        yield event
                        if event.terminal:
                            return
            except httpx.TransportError:
                failures += 1
                if failures > self.max_reconnects:
                    raise
                await anyio.sleep(self.reconnect_delay)

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
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as plain:
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


# --- sync client --------------------------------------------------------------------------------


class Gateway(AbstractContextManager["Gateway"]):
    """The same API, blocking: each call runs the async client on a private event-loop thread."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **kwargs: Any) -> None:
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal = self._portal_cm.__enter__()
        self._async = self._portal.call(lambda: _make_async(base_url, api_key, kwargs))

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._portal.call(self._async.aclose)
        self._portal_cm.__exit__(None, None, None)

    def _iterate(self, stream: AsyncIterator[JobEvent]) -> Iterator[JobEvent]:
        try:
            while True:
                try:
                    yield self._portal.call(stream.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                self._portal.call(aclose)

    def generate(self, model: str, prompt: str, **kwargs: Any) -> Iterator[JobEvent]:
        return self._iterate(self._async.generate(model, prompt, **kwargs))

    def events(self, job_id: str, *, last_event_id: int = 0) -> Iterator[JobEvent]:
        return self._iterate(self._async.events(job_id, last_event_id=last_event_id))

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._portal.call(lambda: fn(*args, **kwargs))

    def run(self, model: str, prompt: str, **kwargs: Any) -> JobEvent:
        event: JobEvent = self._call(self._async.run, model, prompt, **kwargs)
        return event

    def create(self, model: str, prompt: str, **kwargs: Any) -> dict[str, Any]:
        job: dict[str, Any] = self._call(self._async.create, model, prompt, **kwargs)
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._call(self._async.get, job_id)
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._call(self._async.cancel, job_id)
        return job

    def list(self, **kwargs: Any) -> dict[str, Any]:
        page: dict[str, Any] = self._call(self._async.list, **kwargs)
        return page

    def balance(self) -> int:
        return int(self._call(self._async.balance))

    def models(self) -> ModelList:
        models: ModelList = self._call(self._async.models)
        return models

    def download(self, url: str, path: str | Path, **kwargs: Any) -> Path:
        target: Path = self._call(self._async.download, url, path, **kwargs)
        return target


async def _make_async(base_url: str | None, api_key: str | None, kwargs: dict[str, Any]) -> AsyncGateway:
    return AsyncGateway(base_url, api_key, **kwargs)
