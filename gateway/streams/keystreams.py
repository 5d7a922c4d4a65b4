"""A revoke ends the key's open streams on this replica (and, told over the bus, on every other)."""

from __future__ import annotations

import logging

from anyio.abc import TaskGroup

from gateway.store import keys
from gateway.store.db import Database
from gateway.streams.openstreams import OpenStreams

log = logging.getLogger("gateway")


class RevokedKeyStreams:
    """Watches key changes for keys with streams open here; a revoked key's streams are ended.

    A key change (made here, or announced by another replica over the event bus) for a key that holds
    streams on this replica looks the key up once; if it was revoked, those streams end as if the
    job's events had run out. The client's EventSource reconnects, and its token is refused (401).
    """

    def __init__(self, db: Database, streams: OpenStreams) -> None:
        self.db = db
        self.streams = streams
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup) -> None:
        self._tg = tg

    def key_changed(self, key_id: str) -> None:
        if self._tg is not None and self.streams.held_by(key_id):
            self._tg.start_soon(self._end_if_revoked, key_id)

    async def _end_if_revoked(self, key_id: str) -> None:
        try:
            key = await keys.get(self.db, key_id)
        except Exception:  # a store hiccup must not stop the app's task group
            log.exception("cannot tell whether key %s was revoked; its streams stay open", key_id)
            return
        if key is None or key.revoked:
            self.streams.end_key(key_id)
