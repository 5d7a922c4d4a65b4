"""Per-provider caps on jobs in flight upstream (the gate protocol and its in-process engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import anyio

from gateway.store.jobs import Job

OnPosition = Callable[[int], Awaitable[None]]


class Gate(Protocol):
    """Holds a job until its provider has a free slot; jobs beyond the cap wait in the gateway's queue."""

    limit: int

    def slot(self, job: Job, on_position: OnPosition) -> AbstractAsyncContextManager[None]: ...

    async def occupancy(self) -> tuple[int, int]:
        """Jobs holding a slot now, and jobs waiting for one (the operators' view)."""
        ...


class CapacityGate:
    """The in-process engine: a FIFO semaphore that tells each waiter its place in the queue when it changes.

    Places are reported at most once per `report_interval` per waiter: every release moves every
    waiter, and reporting each move would write a quadratic number of events.
    """

    def __init__(self, limit: int, report_interval: float = 2.0) -> None:
        self.limit = max(1, limit)
        self.report_interval = report_interval
        self.in_flight = 0
        self._waiting: list[anyio.Event] = []

    @property
    def queued(self) -> int:
        return len(self._waiting)

    async def occupancy(self) -> tuple[int, int]:
        return self.in_flight, self.queued

    @asynccontextmanager
    async def slot(self, job: Job, on_position: OnPosition) -> AsyncIterator[None]:
        await self._acquire(on_position)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, on_position: OnPosition) -> None:
        if self.in_flight < self.limit and not self._waiting:
            self.in_flight += 1
            return
        granted = anyio.Event()
        self._waiting.append(granted)
        told = 0
        try:
            while not granted.is_set():
                position = self._waiting.index(granted) + 1
                if position != told:
                    told = position
                    await on_position(position)
                with anyio.move_on_after(self.report_interval):
                    await granted.wait()
        except BaseException:
            if granted.is_set():
                self._release()  # handed a slot while being cancelled: pass it on
            else:
                self._waiting.remove(granted)
            raise

    def _release(self) -> None:
        if self._waiting:
            self._waiting.pop(0).set()  # the slot passes straight to the next in line
        else:
            self.in_flight -= 1
