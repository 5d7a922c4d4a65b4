"""The shared engine of the provider gate: one in-flight cap for all replicas, kept in the database."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from gateway.capacity import OnPosition
from gateway.store import shared
from gateway.store.db import Database
from gateway.store.jobs import Job

log = logging.getLogger("gateway.capacity")


class SharedGate:
    """`max_in_flight` counted over every replica's jobs (it models the upstream account's concurrency).

    A waiting job asks again every `poll_seconds`; it holds its slot until it finishes, so a job
    taken over by another replica keeps it, and a finished job frees it with no further write.
    """

    def __init__(
        self,
        db: Database,
        provider: str,
        limit: int,
        *,
        poll_seconds: float = 0.5,
        report_interval: float = 2.0,
    ) -> None:
        self.db = db
        self.provider = provider
        self.limit = max(1, limit)
        self.poll_seconds = poll_seconds
        self.report_interval = report_interval

    @asynccontextmanager
    async def slot(self, job: Job, on_position: OnPosition) -> AsyncIterator[None]:
        told, told_at = 0, -self.report_interval
        while (position := await self._take(job)) != 0:
            # as in-process: a changed place is reported at most once per interval (see CapacityGate)
            if (
                position is not None
                and position != told
                and time.monotonic() - told_at >= self.report_interval
            ):
                told, told_at = position, time.monotonic()
                await on_position(position)
            # Further back in line asks less often: N waiting jobs must not mean 2N transactions a second.
            await anyio.sleep(self.poll_seconds * min(position or 1, 10))
        yield

    async def occupancy(self) -> tuple[int, int]:
        return await shared.slots_in_use(self.db, self.provider)

    async def _take(self, job: Job) -> int | None:
        """0 once the job holds a slot, else its place (None: unknown). A store error means asking
        again, not failing the job: a burst of takers can keep the pool busy past its timeout."""
        try:
            return await shared.take_slot(self.db, job.id, job.epoch, self.provider, self.limit)
        except Exception as exc:
            log.warning("job %s: taking a %s slot failed (%s); asking again", job.id, self.provider, exc)
            return None
