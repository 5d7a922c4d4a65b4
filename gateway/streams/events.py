"""Job events live: the event bus protocol and its in-process engine (the event itself: store/event_records.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import anyio

from gateway.store.event_records import Event

# A listener that falls this far behind is not blocked on: it re-reads the durable log instead.
LISTENER_BUFFER = 64


OnTerminal = Callable[[str], None]


class EventBus(Protocol):
    """Live fan-out of recorded events to every listener of a job, in this process or across replicas.

    The durable log is the truth; the bus only says "there is more". `poll_seconds` is how long a
    follower waits for a live event before it reads the log anyway (None: never — the bus loses nothing).
    """

    poll_seconds: float | None

    def subscribe(self, job_id: str) -> AbstractContextManager[Mailbox]: ...

    async def publish(self, event: Event) -> None: ...

    def on_remote_terminal(self, callback: OnTerminal) -> None:
        """Call `callback(job_id)` for each terminal event recorded by another replica."""

    async def key_changed(self, key_id: str) -> None:
        """Tell the other replicas that an API key was revoked, updated or credited."""

    def on_key_changed(self, callback: Callable[[str], None]) -> None:
        """Call `callback(key_id)` for each key change another replica announces."""

    async def serve(self) -> None:
        """Run whatever the engine needs in the background (owned by the app's task group)."""

    async def aclose(self) -> None: ...

    @property
    def listener_count(self) -> int: ...


class Mailbox:
    """One live listener's events: a bounded queue whose one reader waits on a bare future.

    anyio's memory streams make an Event and look the current task up at every wait; with thousands
    of open streams that was a tenth of the event loop's time (py-spy), so this is asyncio's own
    future, as the server runs on asyncio. A listener that falls `limit` events behind is closed: it
    reads what it holds, then the end, and its follower reads the log from there (streams.follow).
    """

    __slots__ = ("_closed", "_items", "_waiter", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put(self, event: Event) -> bool:
        """Queue an event, never waiting; False (and closed) when the listener has fallen behind."""
        if self._closed:
            return False
        if len(self._items) >= self.limit:
            self.close()
            return False
        self._items.append(event)
        self._wake()
        return True

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self, within: float | None = None) -> Event | None:
        """The next event, or None after `within` seconds without one; anyio.EndOfStream once closed
        and drained. The wait is a timer on the same future, not a cancel scope per event."""
        if not self._items:
            if self._closed:
                raise anyio.EndOfStream
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(within, self._wake) if within is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            if not self._items:
                if self._closed:
                    raise anyio.EndOfStream
                return None  # the time ran out
        return self._items.popleft()

    @property
    def pending(self) -> int:
        """Events queued and not yet read."""
        return len(self._items)

    def __aiter__(self) -> Mailbox:
        return self

    async def __anext__(self) -> Event:
        while True:
            try:
                event = await self.receive()
            except anyio.EndOfStream:
                raise StopAsyncIteration from None
            if event is not None:
                return event


class EventHub:
    """The in-process engine: fans each recorded event out to the live listeners of its job.

    Alone it serves one process; the Redis engine uses one for the listeners on its own replica.
    """

    def __init__(self, poll_seconds: float | None = None) -> None:
        self.poll_seconds = poll_seconds
        self._listeners: dict[str, set[Mailbox]] = defaultdict(set)

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[Mailbox]:
        mailbox = Mailbox(LISTENER_BUFFER)
        self._listeners[job_id].add(mailbox)
        try:
            yield mailbox
        finally:
            listeners = self._listeners.get(job_id)
            if listeners is not None:
                listeners.discard(mailbox)
                if not listeners:
                    del self._listeners[job_id]
            mailbox.close()

    async def publish(self, event: Event) -> None:
        self.deliver(event)

    def on_remote_terminal(self, callback: OnTerminal) -> None:
        pass  # one process: there is no other replica

    async def key_changed(self, key_id: str) -> None:
        pass

    def on_key_changed(self, callback: Callable[[str], None]) -> None:
        pass

    async def serve(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def deliver(self, event: Event) -> None:
        """Hand an event to this process's listeners of its job, never waiting on a slow one."""
        listeners = self._listeners.get(event.job_id)
        if not listeners:
            return
        for mailbox in list(listeners):
            if not mailbox.put(event):  # fell behind: closed, it reads the log from now on
                listeners.discard(mailbox)
        if event.terminal:  # nothing follows it: a listener that never leaves is not kept either
            del self._listeners[event.job_id]

    @property
    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())
