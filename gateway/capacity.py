"""Per-provider caps on jobs in flight upstream; jobs beyond the cap wait in the gateway's own queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

OnPosition = Callable[[int], Awaitable[None]]


class CapacityGate:
    """A FIFO semaphore that tells each waiter its place in the queue whenever the place changes."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.in_flight = 0
        self._waiting: list[anyio.Event] = []
        self._changed = anyio.Event()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def slot(self, on_position: OnPosition) -> AsyncIterator[None]:
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
        self._notify()
        told = 0
        try:
            while not granted.is_set():
                changed = self._changed  # taken before looking, so no change can slip between
                position = self._waiting.index(granted) + 1
                if position != told:
                    told = position
                    await on_position(position)
                    continue
                await changed.wait()
        except BaseException:
            if granted.is_set():
                self._release()  # handed a slot while being cancelled: pass it on
            else:
                self._waiting.remove(granted)
                self._notify()
            raise

    def _release(self) -> None:
        if self._waiting:
            self._waiting.pop(0).set()  # the slot passes straight to the next in line
            self._notify()
        else:
            self.in_flight -= 1

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
