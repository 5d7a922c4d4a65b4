"""The per-provider gate: jobs wait in a queue fair across keys until an account has a free slot."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import anyio

from gateway.store import shared
from gateway.store.db import Database
from gateway.store.job_records import Job
from gateway.store.records import AccountCap, Place

log = logging.getLogger("gateway.capacity")

OnPosition = Callable[[int], Awaitable[None]]
WAKE_NEAREST = 3
"""A freed slot wakes the waiters this near the head at once; the others find out when they next ask."""


class Gate:
    """Each account's `max_in_flight`, counted over every replica's jobs in the database (it models
    the upstream account's concurrency), and the order in which waiting jobs get a slot.

    A waiting job asks again every `poll_seconds` (further back in line, less often), or at once when a
    job of this replica frees a slot. It holds its slot, on the account it was given, until it finishes:
    a job taken over by another replica keeps it, and a finished job frees it with no further write.
    """

    def __init__(
        self, db: Database, provider: str, *, poll_seconds: float = 0.5, report_interval: float = 2.0
    ) -> None:
        self.db = db
        self.provider = provider
        self.poll_seconds = poll_seconds
        self.report_interval = report_interval
        self._waiting: dict[str, tuple[int, anyio.Event]] = {}

    @asynccontextmanager
    async def slot(
        self, job: Job, accounts: Callable[[], Sequence[AccountCap]], on_position: OnPosition
    ) -> AsyncIterator[str]:
        """Wait for a slot; yields the name of the account the job holds it on."""
        told, told_at = 0, -self.report_interval
        try:
            while True:
                place = await self._take(job, accounts())
                if place is not None and place.position == 0 and place.account is not None:
                    account = place.account
                    break
                position = place.position if place is not None else None
                # A changed place is reported at most once per interval: every freed slot moves every
                # waiter, and reporting each move would write a quadratic number of events.
                if (
                    position is not None
                    and position != told
                    and time.monotonic() - told_at >= self.report_interval
                ):
                    told, told_at = position, time.monotonic()
                    await on_position(position)
                woken = anyio.Event()
                self._waiting[job.id] = (position or 1, woken)
                with anyio.move_on_after(self.poll_seconds * min(position or 1, 10)):
                    await woken.wait()
        finally:
            self._waiting.pop(job.id, None)
        yield account

    def freed(self) -> None:
        """A job of this replica finished or gave its slot back: the nearest waiters ask again now."""
        for position, woken in list(self._waiting.values()):
            if position <= WAKE_NEAREST:
                woken.set()

    async def give_back(self, job: Job) -> None:
        """The account refused the job before the upstream took it: back to the queue, keeping its round."""
        await shared.give_back_slot(self.db, job.id, job.epoch)
        self.freed()

    async def _take(self, job: Job, accounts: Sequence[AccountCap]) -> Place | None:
        """None when the store failed: that means asking again, not failing the job (a burst of
        takers can keep the pool busy past its timeout)."""
        try:
            return await shared.take_slot(self.db, job.id, job.epoch, self.provider, accounts)
        except Exception as exc:
            log.warning("job %s: taking a %s slot failed (%s); asking again", job.id, self.provider, exc)
            return None
