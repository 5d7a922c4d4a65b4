"""The blocking SDK client: the async one run on a private event-loop thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from gateway_client.async_client import AsyncGateway, ModelList
from gateway_client.events import JobEvent


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
