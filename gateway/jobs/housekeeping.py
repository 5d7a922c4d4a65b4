"""Periodic chores that one replica at a time does for all: the result sweep, stale rate windows, stray webhooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio

from gateway.store import shared
from gateway.store.db import Database

log = logging.getLogger("gateway.housekeeping")


async def every(
    db: Database, name: str, owner: str, seconds: float, chore: Callable[[], Awaitable[None]]
) -> None:
    """Run `chore` every `seconds` on whichever replica holds the named lock (it lapses after two
    missed rounds, so another replica takes the chore over when its holder dies)."""
    while True:
        moment = time.time()
        try:
            if await shared.hold(db, name, owner, now=moment, until=moment + 2 * seconds + 1):
                await chore()
        except Exception:
            log.exception("%s failed; trying again in %g s", name, seconds)
        await anyio.sleep(seconds)
