"""What every protocol's handlers share: the simulator context, JSON bodies, credentials, URLs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from providers.simulator.store import Store
from providers.simulator.timeline import (
    HANG_SECONDS,
    Clock,
    TaskId,
    hangs,
    parse_task_id,
    rejects,
    throttles_once,
)

RETRY_AFTER = {"Retry-After": "1"}

ErrorAnswer = Callable[[int, str, dict[str, str] | None], Response]
"""Builds a protocol's error answer from a status, a message and extra headers."""


@dataclass(frozen=True)
class Simulator:
    """The clock every state is computed from and the store of what ids cannot carry."""

    clock: Clock
    store: Store

    def refuse(self, protocol: str, prompt: str, answer: ErrorAnswer) -> Response | None:
        """A submit's refusal by directive, in the protocol's error shape: `sim:reject` always, `sim:429` once."""
        if rejects(prompt):
            return answer(500, "Internal server error (sim:reject)", None)
        if throttles_once(prompt) and self.store.first_submit(f"{protocol}\n{prompt}"):
            return answer(429, "Too many requests, retry later (sim:429)", RETRY_AFTER)
        return None

    async def hold_answer(self, prompt: str) -> None:
        """After a submit created its task: a `sim:hang` prompt keeps the answer back for a long while."""
        if hangs(prompt):
            await anyio.sleep(HANG_SECONDS)

    def find(self, protocol: str, text: str) -> TaskId | None:
        """The task behind an id of this protocol, or None: a malformed id, or another protocol's."""
        task = parse_task_id(text)
        record = self.store.record(text) if task else None
        if record is not None and record.get("protocol") != protocol:
            return None
        return task


async def read_object(request: Request) -> dict[str, Any] | None:
    """The JSON object in the body, or None when the body is not one."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def bearer(connection: HTTPConnection, scheme: str = "Bearer") -> str | None:
    """The non-empty credential after `scheme` in the Authorization header."""
    given_scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
    if given_scheme.lower() != scheme.lower() or not credential.strip():
        return None
    return credential.strip()


INVALID_CREDENTIAL = "invalid"
"""The stand-in for a bad, banned or exhausted key: every protocol refuses it with its own 401."""


def credential_refused(connection: HTTPConnection, scheme: str = "Bearer", *, required: bool = True) -> bool:
    """The auth check of every simulated provider: no credential (where one is required), or `invalid`."""
    credential = bearer(connection, scheme)
    if credential is None:
        return required
    return credential == INVALID_CREDENTIAL


def root_url(connection: HTTPConnection) -> str:
    """The simulator's own base URL as the caller reached it, for absolute URLs in answers."""
    return str(connection.base_url).rstrip("/")


def mount_url(connection: HTTPConnection) -> str:
    """The base URL of the protocol the request came in on (its Mount), e.g. `http://host:port/fal`."""
    root_path = str(connection.scope.get("root_path", ""))
    app_root = str(connection.scope.get("app_root_path", ""))
    return root_url(connection) + root_path.removeprefix(app_root)


def media_url(connection: HTTPConnection, stem: str, extension: str) -> str:
    return f"{root_url(connection)}/media/{stem}.{extension}"


def text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value if isinstance(value, str) else ""


def json_error(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)
