"""What an adapter is given: its provider's settings, the retry rule, and one job as a task."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Sleep = Callable[[float], Awaitable[None]]


# --- what an adapter is given ----------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call to an upstream is retried (429, 5xx, connection errors)."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0


class UpstreamObserver(Protocol):
    """Told of every upstream call (the gateway's metrics); status None means no answer."""

    def __call__(self, provider: str, method: str, status: int | None, seconds: float) -> None: ...


@dataclass(frozen=True)
class ProviderSettings:
    """One provider's configuration, as the registry hands it to the adapter's constructor."""

    name: str
    base_url: str
    api_key: str | None = None
    poll_interval: float = 2.0
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    extra: Mapping[str, Any] = field(default_factory=dict)
    observer: UpstreamObserver | None = None


@dataclass(frozen=True)
class Task:
    """One job as an adapter sees it: what to send upstream, and the upstream id once there is one."""

    job_id: str
    model: str
    prompt: str
    """The effective prompt: the user's, with a style suffix where the upstream has no style field."""
    style: str | None
    style_label: str | None
    options: Mapping[str, Any]
    params: Mapping[str, Any]
    """The model's upstream parameters from config.toml (upstream model name, endpoint path …)."""
    upstream_id: str | None = None
    """Set when the job was already submitted (restart recovery): the adapter re-attaches instead."""
