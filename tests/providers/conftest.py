"""Adapter test fixtures: provider settings on loopback, a recording sleep, a task builder, a drain."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from providers.base import Provider, ProviderSettings, RetryPolicy, Submitting, Task, Update, UpstreamError

MAX_ATTEMPTS = 3
POLL_INTERVAL = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingSleep:
    """Stands in for anyio.sleep: returns at once and remembers every pause asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def settings(name: str, base_url: str, **overrides: Any) -> ProviderSettings:
    values: dict[str, Any] = {
        "name": name,
        "base_url": base_url,
        "api_key": "test-key",
        "poll_interval": POLL_INTERVAL,
        "timeout": 5.0,
        "retry": RetryPolicy(max_attempts=MAX_ATTEMPTS, base_delay=0.5, max_delay=30.0),
    }
    values.update(overrides)
    return ProviderSettings(**values)


def task(
    prompt: str = "a lighthouse at dusk",
    *,
    options: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    style_label: str | None = None,
    upstream_id: str | None = None,
) -> Task:
    return Task(
        job_id="job-1",
        model="model",
        prompt=prompt,
        style=style_label.lower() if style_label else None,
        style_label=style_label,
        options=dict(options or {}),
        params=dict(params or {}),
        upstream_id=upstream_id,
    )


async def drain(provider: Provider, job: Task, *, intents: bool = False) -> list[Update]:
    """Every update of one run, the way the runner reads them; the `Submitting` marker before each
    submit only when `intents` (tests/providers/test_submits.py checks it on every adapter)."""
    async with aclosing(provider.run(job)) as updates:
        return [update async for update in updates if intents or not isinstance(update, Submitting)]


def rate_limited(httpx_mock: HTTPXMock, method: str, url: str, **answer: Any) -> None:
    """One 429 answer that asks to come back in 3 s."""
    httpx_mock.add_response(method=method, url=url, status_code=429, headers={"Retry-After": "3"}, **answer)


async def retries_run_out(provider: Provider, job: Task, httpx_mock: HTTPXMock) -> UpstreamError:
    """Runs a job whose upstream keeps failing: every attempt is made, and the error says retryable."""
    with pytest.raises(UpstreamError) as raised:
        await drain(provider, job)
    assert raised.value.retryable is True
    assert len(httpx_mock.get_requests()) == MAX_ATTEMPTS
    return raised.value
