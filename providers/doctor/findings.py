"""What a check of one upstream finds: each check's verdict, and turning one HTTP exchange into verdicts."""

from __future__ import annotations

import enum
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from providers.base import ProviderSettings, upstream_message


class Status(enum.Enum):
    OK = "ok"
    PROBLEM = "problem"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    """One check (credential, reachable, auth, workflow …) and what it found, in the operator's words."""

    check: str
    status: Status
    detail: str = ""


def ok(check: str, detail: str) -> Finding:
    return Finding(check, Status.OK, detail)


def problem(check: str, detail: str) -> Finding:
    return Finding(check, Status.PROBLEM, detail)


def skipped(check: str, detail: str) -> Finding:
    return Finding(check, Status.SKIPPED, detail)


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ssl.SSLCertVerificationError):
        seen = seen.__cause__ or seen.__context__
    return seen


def unreachable(url: str, exc: httpx.TransportError) -> Finding:
    """Why the upstream could not be reached, without a traceback."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = f"no answer in time ({type(exc).__name__})"
    elif (untrusted := _certificate_error(exc)) is not None:
        reason = f"TLS certificate not trusted ({untrusted.verify_message}); see SSL_CERT_FILE"
    return problem("reachable", f"{url}: {' '.join(reason.split())[:200]}")


Probe = Callable[[httpx.AsyncClient, ProviderSettings, Sequence[Mapping[str, Any]]], Awaitable[list[Finding]]]
"""Checks one upstream with a client on its base URL, given the upstream parameters of its models."""

Reader = Callable[[Any], str]
"""Turns an accepted answer's JSON into the detail shown (a balance, say); raises on a body it cannot read."""


async def authenticated_get(
    http: httpx.AsyncClient,
    path: str,
    headers: Mapping[str, str],
    read: Reader,
    *,
    accepted_statuses: tuple[int, ...] = (),
) -> list[Finding]:
    """One cheap GET: is the host there (any HTTP answer), and was the credential accepted (not 401/403)?
    `accepted_statuses` are non-2xx answers that still mean the credential passed (a 404 for a made-up id)."""
    url = f"{http.base_url}".rstrip("/") + path
    try:
        response = await http.get(path, headers=dict(headers))
    except httpx.TransportError as exc:
        return [unreachable(url, exc), skipped("auth", "not checked: the upstream is unreachable")]
    reachable = ok("reachable", f"{url} answered {response.status_code}")
    status = response.status_code
    if status in (401, 403):
        return [reachable, problem("auth", f"credential rejected: {upstream_message(response)}")]
    if status in accepted_statuses:
        return [reachable, ok("auth", f"credential accepted ({status} for a probe that creates nothing)")]
    if not response.is_success:
        return [reachable, problem("auth", f"unexpected answer: {upstream_message(response)}")]
    try:
        detail = read(response.json())
    except (ValueError, LookupError, TypeError, AttributeError):
        return [reachable, problem("auth", f"credential accepted, but the answer does not parse: {url}")]
    return [reachable, ok("auth", detail)]
