"""What an adapter yields (updates, ending in success or failure), the errors it raises, and the Provider protocol."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from providers.base.task import Task

# --- what an adapter yields ------------------------------------------------------------------


@dataclass(frozen=True)
class Submitting:
    """The submit request is about to leave. Yielded right before it is sent: the runner records
    the intent durably first, so a job found after a crash with an intent and no upstream id is
    known to be one the upstream may hold (see `FindsSubmitted`)."""


@dataclass(frozen=True)
class Submitted:
    """The upstream accepted the task; `upstream_id` is what re-attaches to it after a restart."""

    upstream_id: str


@dataclass(frozen=True)
class Queued:
    position: int | None = None


@dataclass(frozen=True)
class Preview:
    """A live look at a job while it renders: an image frame's bytes (the gateway keeps the latest),
    or a link to a stream the upstream serves (Suno's audio while a clip renders)."""

    content_type: str
    data: bytes = b""
    url: str | None = None


@dataclass(frozen=True)
class Progress:
    percent: int | None = None
    message: str | None = None
    preview: Preview | None = None


@dataclass(frozen=True)
class Succeeded:
    urls: list[str]
    content_type: str | None = None
    produced: Mapping[str, float] = field(default_factory=dict)
    """What the upstream reports it made, by the pricing option it settles (e.g. `duration` seconds)."""


@dataclass(frozen=True)
class Failed:
    message: str
    code: str = "upstream_failed"


Update = Submitting | Submitted | Queued | Progress | Succeeded | Failed


class UpstreamError(Exception):
    """A call to the upstream that gave no usable answer; `retryable` says if trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        account_refused: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.account_refused = account_refused
        """Set when the answer is the provider's answer to a bad, banned or exhausted credential: why."""


class SubmitUncertain(UpstreamError):
    """A submit was sent but no answer came back (read timeout, dropped connection): the upstream
    may hold the task or not. Never resent blindly, which could render twice."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class MalformedUpstream(UpstreamError):
    """The upstream answered, but not in the shape its protocol promises."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Provider(Protocol):
    """An upstream adapter. It never touches the ledger, the database or the client's request."""

    name: str

    def prepare(self, task: Task) -> Task:
        """Check provider-specific options (raising `OptionError` naming the field) and return the
        task as it will be sent upstream, with its effective prompt."""
        ...

    def run(self, task: Task) -> AsyncGenerator[Update, None]:
        """Submit (or re-attach when `task.upstream_id` is set) and yield updates until one is terminal.

        `Submitting` comes right before the submit request leaves, `Submitted` as soon as it answers;
        a submit sent without an answer raises `SubmitUncertain` (see `UpstreamClient.submit`)."""
        ...

    async def cancel(self, upstream_id: str) -> bool:
        """Ask the upstream to stop the task; True when it says it did."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class FindsSubmitted(Protocol):
    """An adapter whose upstream lists its tasks with a marker the submit carried: after a crash
    between the submit and its recording, the runner finds the task again instead of giving up."""

    async def find_submitted(self, task: Task) -> str | None:
        """The upstream id of the task this job submitted, or None when the upstream holds none."""
        ...


class OptionError(ValueError):
    """An option the upstream cannot take; becomes 400 `invalid_option` before anything is debited."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option
        self.message = message
