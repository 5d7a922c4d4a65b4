"""Open event streams by API key, so that revoking a key ends the streams it has open on this replica."""

from __future__ import annotations

import logging
from collections import defaultdict

import anyio
from anyio.abc import TaskGroup
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.store import keys
from gateway.store.db import Database

log = logging.getLogger("gateway")


class KeyStreams:
    """Every open stream runs inside a cancel scope filed under its job's key.

    A key change (made here, or announced by another replica over the bus) for a key with open
    streams looks the key up once; if it was revoked, those scopes are cancelled and each stream ends
    as if the job's events had run out. The client's EventSource reconnects, and its token is refused.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._open: defaultdict[str, set[anyio.CancelScope]] = defaultdict(set)
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup) -> None:
        self._tg = tg

    def key_changed(self, key_id: str) -> None:
        if key_id in self._open and self._tg is not None:
            self._tg.start_soon(self._end_if_revoked, key_id)

    async def _end_if_revoked(self, key_id: str) -> None:
        try:
            key = await keys.get(self.db, key_id)
        except Exception:  # a store hiccup must not stop the app's task group
            log.exception("cannot tell whether key %s was revoked; its streams stay open", key_id)
            return
        if key is None or key.revoked:
            for scope in list(self._open.get(key_id, ())):
                scope.cancel()

    def open_count(self, key_id: str) -> int:
        return len(self._open.get(key_id, ()))

    def guard(self, key_id: str, response: Response) -> Response:
        return _Guarded(self, key_id, response)

    def _add(self, key_id: str, scope: anyio.CancelScope) -> None:
        self._open[key_id].add(scope)

    def _remove(self, key_id: str, scope: anyio.CancelScope) -> None:
        scopes = self._open.get(key_id)
        if scopes is not None:
            scopes.discard(scope)
            if not scopes:
                del self._open[key_id]


class _Guarded(Response):
    """Runs a streaming response until it ends or the key is revoked; then closes the body cleanly."""

    def __init__(self, streams: KeyStreams, key_id: str, inner: Response) -> None:
        self.streams = streams
        self.key_id = key_id
        self.inner = inner
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = finished = False

        async def tracked(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        with anyio.CancelScope() as cancel:
            self.streams._add(self.key_id, cancel)
            try:
                await self.inner(scope, receive, tracked)
            finally:
                self.streams._remove(self.key_id, cancel)
        if cancel.cancelled_caught and started and not finished:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
