"""A replica's drain on SIGTERM: creates refused with 503, open streams ended, a deadline for the rest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.contract.errors import ShuttingDown

log = logging.getLogger("gateway")

# Clients are told to come back after this long: another replica (behind the proxy) answers at once, and
# this one, restarting, refuses connections until it listens again, which EventSource retries by itself.
RETRY_AFTER_SECONDS = 1


class Drain:
    """Set once, when the process is asked to stop; then everything that would outlive it winds down.

    Creates answer `503 shutting_down`, event streams end (after a `retry:` hint) so their clients
    reconnect and resume by Last-Event-ID, the runner stops taking jobs up and hands its own over. All
    of it is due by `deadline`: `grace_seconds` after the drain began.
    """

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.retry_after = RETRY_AFTER_SECONDS
        self.deadline: float | None = None
        """`time.monotonic()` by which the process should be gone; None until the drain begins."""
        self._on_begin: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def remaining(self) -> float:
        """Seconds left before the deadline (the whole grace while not draining)."""
        if self.deadline is None:
            return self.grace_seconds
        return max(0.0, self.deadline - time.monotonic())

    def on_begin(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (on the event loop) when the drain begins."""
        self._on_begin.append(callback)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop `request()` hands the drain to (the app's lifespan attaches its own)."""
        self._loop = loop

    def request(self) -> None:
        """Begin the drain from a signal handler or another thread: on the loop, soon."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.begin)

    def begin(self) -> None:
        """Begin the drain (on the event loop); a second call does nothing."""
        if self.draining:
            return
        self.deadline = time.monotonic() + self.grace_seconds
        log.info("draining: refusing creates, ending streams, exiting within %g s", self.grace_seconds)
        for callback in self._on_begin:
            callback()

    def refuse_creates(self) -> None:
        """Raise `503 shutting_down` while draining: a job created now would start on a leaving replica."""
        if self.draining:
            raise ShuttingDown(self.retry_after)
