"""The Provider seam: the request an adapter gets, the updates it yields, and the shared HTTP helpers."""

from __future__ import annotations

import email.utils
import json
import logging
import mimetypes
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
import httpx
from pydantic import BaseModel, ValidationError

log = logging.getLogger("providers")

Sleep = Callable[[float], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


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


@dataclass(frozen=True)
class Failed:
    message: str
    code: str = "upstream_failed"


Update = Submitting | Submitted | Queued | Progress | Succeeded | Failed


class UpstreamError(Exception):
    """A call to the upstream that gave no usable answer; `retryable` says if trying again may help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


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


# --- shared helpers ----------------------------------------------------------------------------


def apply_style_suffix(prompt: str, style_label: str | None) -> str:
    """A style the upstream has no field for becomes `"<prompt>, <style> style"`."""
    return f"{prompt}, {style_label} style" if style_label else prompt


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def upstream_message(response: httpx.Response, limit: int = 300) -> str:
    """The upstream's own words for an error, trimmed, from the usual JSON fields or the text."""
    text = response.text.strip()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        for key in ("detail", "error", "message", "failure", "failure_reason", "error_message"):
            if body.get(key):
                message = body[key]
                break
    if message is None:
        message = text or response.reason_phrase
    if isinstance(message, dict) and isinstance(message.get("message"), str):
        message = message["message"]  # {"error": {"type": …, "message": …}} (ComfyUI, OpenAI-style)
    if not isinstance(message, str):
        message = json.dumps(message)[:limit]
    message = " ".join(message.split())
    return f"upstream answered {response.status_code}: {message[:limit]}"


# Transport errors raised before a request left: resending cannot create a second upstream task.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def backoff_delay(attempt: int, policy: RetryPolicy) -> float:
    """Exponential backoff with full jitter (attempt counts from 1)."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


class UpstreamClient:
    """One provider's httpx client plus the retry rule every adapter shares."""

    def __init__(
        self,
        settings: ProviderSettings,
        headers: Mapping[str, str],
        *,
        sleep: Sleep = anyio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=dict(headers),
            timeout=httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout)),
            transport=transport,
        )

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send, retrying 429/5xx/connection errors (honouring Retry-After); other 4xx are final."""
        return await self._send(method, url, (), kwargs)

    async def submit(
        self, method: str, url: str, allow: Collection[int] = (), **kwargs: Any
    ) -> httpx.Response:
        """Send a request that creates an upstream task: like `request_allowing`, but once the request
        may have reached the upstream (it was sent and no answer came), it is not sent again — that
        could create a second task — and `SubmitUncertain` is raised instead."""
        return await self._send(method, url, allow, kwargs, creates=True)

    async def request_allowing(
        self, method: str, url: str, allow: Collection[int], **kwargs: Any
    ) -> httpx.Response:
        """Like `request`, but an answer whose status is in `allow` is returned, not raised or retried:
        for the answers a protocol gives meaning to (a cancel's 400 "already done", a 400 whose body
        names the failure)."""
        return await self._send(method, url, allow, kwargs)

    async def _send(
        self, method: str, url: str, allow: Collection[int], kwargs: dict[str, Any], *, creates: bool = False
    ) -> httpx.Response:
        policy = self.settings.retry
        for attempt in range(1, policy.max_attempts + 1):
            last = attempt == policy.max_attempts
            started = time.perf_counter()
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                self._observe(method, None, started)
                if creates and not isinstance(exc, NOT_SENT):
                    raise SubmitUncertain(f"no answer to the submit: {type(exc).__name__}") from exc
                reason = f"could not reach upstream: {type(exc).__name__}"
                if last:
                    raise UpstreamError(reason, retryable=True) from exc
                log.warning("%s %s %s (attempt %d)", self.settings.name, method, reason, attempt)
                await self.sleep(backoff_delay(attempt, policy))
                continue
            self._observe(method, response.status_code, started)
            if response.status_code in allow:
                return response
            if response.status_code == 429 or response.status_code >= 500:
                if last:
                    raise UpstreamError(
                        upstream_message(response), retryable=True, status=response.status_code
                    )
                delay = retry_after_seconds(response)
                if delay is None:
                    delay = backoff_delay(attempt, policy)
                log.warning(
                    "%s %s %s answered %d (attempt %d), retrying in %.2fs",
                    self.settings.name,
                    method,
                    url,
                    response.status_code,
                    attempt,
                    delay,
                )
                await self.sleep(min(delay, policy.max_delay))
                continue
            if response.status_code >= 400:
                raise UpstreamError(upstream_message(response), retryable=False, status=response.status_code)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, method: str, status: int | None, started: float) -> None:
        if self.settings.observer is not None:
            self.settings.observer(self.settings.name, method, status, time.perf_counter() - started)

    async def get_json(self, url: str, shape: type[M], **kwargs: Any) -> M:
        return parse(await self.request("GET", url, **kwargs), shape)

    async def aclose(self) -> None:
        await self.http.aclose()


def parse(response: httpx.Response, shape: type[M]) -> M:
    """Read an upstream body into its documented shape, or fail the job cleanly."""
    try:
        return shape.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise MalformedUpstream(
            f"upstream answered an unexpected body ({where}: {first.get('msg', 'invalid')})"
        ) from exc


async def poll_pause(client: UpstreamClient) -> None:
    await client.sleep(client.settings.poll_interval)


class Changes:
    """Lets an update through only when it differs from the last one let through: polls repeat."""

    def __init__(self) -> None:
        self._last: Update | None = None

    def new(self, update: Update) -> bool:
        if update == self._last:
            return False
        self._last = update
        return True


class ElapsedEstimate:
    """Progress guessed from time spent working, for upstreams that report no percent: against a
    typical duration (`typical_seconds` in the model's params, else the provider's extra, else the
    adapter's default), stopping at 95 so that only the upstream's own "done" reaches 100. Time is
    counted in poll intervals, so it restarts from 0 when a job is re-attached."""

    def __init__(self, task: Task, settings: ProviderSettings, default_typical: float) -> None:
        configured = task.params.get("typical_seconds") or settings.extra.get("typical_seconds")
        self.typical = float(configured or default_typical)
        self.interval = settings.poll_interval
        self.elapsed = 0.0

    def next(self, doing: str) -> Progress:
        """The estimate for this poll; the next one counts a poll interval more."""
        percent = max(0, min(95, int(100 * self.elapsed / self.typical))) if self.typical > 0 else 0
        message = f"{doing}: {self.elapsed:.0f} s so far, typically about {self.typical:.0f} s"
        self.elapsed += self.interval
        return Progress(percent, message)


# Types `mimetypes` may not know on every platform.
_MEDIA_TYPES = {".webp": "image/webp", ".webm": "video/webm", ".mp4": "video/mp4", ".mp3": "audio/mpeg"}


def guess_content_type(name: str, default: str = "application/octet-stream") -> str:
    """The media type a result's file name or URL path suggests; `default` when it suggests none, or
    one of another kind than the default's (a video URL is a video, whatever odd suffix it has)."""
    suffix = PurePosixPath(httpx.URL(name).path if "://" in name else name).suffix.lower()
    guess = _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(f"result{suffix}")[0]
    kind = default.split("/")[0]
    if guess is None or (kind in ("image", "video", "audio") and not guess.startswith(f"{kind}/")):
        return default
    return guess


async def delete_unless_finished(
    client: UpstreamClient, url: str, finished: Callable[[httpx.Response], bool]
) -> bool:
    """Cancel by `DELETE url`, but only a task that is still going: on upstreams where a DELETE of a
    finished task deletes its output instead (Luma, Runway), a late cancel must not destroy a result."""
    response = await client.request_allowing("GET", url, (404,))
    if response.status_code == 404 or finished(response):
        return False
    response = await client.request_allowing("DELETE", url, (404,))
    return response.status_code != 404
