"""The HTTP side every adapter shares: one httpx client with the retry rule, and readers of upstream answers."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ValidationError

from providers.base.task import ProviderSettings, RetryPolicy, Sleep
from providers.base.updates import MalformedUpstream, SubmitUncertain, UpstreamError

log = logging.getLogger("providers")

M = TypeVar("M", bound=BaseModel)


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


# Words in an upstream error that mean the account ran out of credit or quota, not that the request was bad.
_EXHAUSTED = ("quota", "credit", "balance", "billing", "exhausted", "insufficient funds")


def account_refusal(response: httpx.Response) -> str | None:
    """Why the answer says the credential itself is refused, or None: 401 and 403 (bad or banned key),
    402, and a 400/429 whose message speaks of exhausted credit or quota."""
    status = response.status_code
    if status == 401:
        return f"credential refused: {upstream_message(response)}"
    if status == 403:
        return f"account forbidden: {upstream_message(response)}"
    if status == 402:
        return f"out of credit: {upstream_message(response)}"
    if status in (400, 429):
        message = upstream_message(response)
        if any(word in message.lower() for word in _EXHAUSTED):
            return f"out of credit or quota: {message}"
    return None


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
            if refused := account_refusal(response):  # retrying the same credential cannot help
                raise UpstreamError(
                    upstream_message(response),
                    retryable=False,
                    status=response.status_code,
                    account_refused=refused,
                )
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
