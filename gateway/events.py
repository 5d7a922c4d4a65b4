"""Job events: the event model, its SSE encoding, the event bus protocol and its in-process engine."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

TERMINAL_STATUSES = frozenset({"Completed", "Error", "Canceled"})

# A listener that falls this far behind is not blocked on: it re-reads the durable log instead.
LISTENER_BUFFER = 64


@dataclass(frozen=True)
class Event:
    job_id: str
    seq: int
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.data.get("status") in TERMINAL_STATUSES

    @cached_property
    def encoded(self) -> str:
        """The event's JSON, made once: the log stores it and every stream sends it."""
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)

    def json(self) -> str:
        return self.encoded

    def sse(self, retry_ms: int | None = None) -> str:
        """`id:` then one `data:` line, no `event:` line, so EventSource.onmessage sees every event."""
        retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
        return f"id: {self.seq}\n{retry}data: {self.json()}\n\n"


OnTerminal = Callable[[str], None]


class EventBus(Protocol):
    """Live fan-out of recorded events to every listener of a job, in this process or across replicas.

    The durable log is the truth; the bus only says "there is more". `poll_seconds` is how long a
    follower waits for a live event before it reads the log anyway (None: never — the bus loses nothing).
    """

    poll_seconds: float | None

    def subscribe(self, job_id: str) -> AbstractContextManager[MemoryObjectReceiveStream[Event]]: ...

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


class EventHub:
    """The in-process engine: fans each recorded event out to the live listeners of its job.

    Alone it serves one process; the Redis engine uses one for the listeners on its own replica.
    """

    def __init__(self, poll_seconds: float | None = None) -> None:
        self.poll_seconds = poll_seconds
        self._listeners: dict[str, set[MemoryObjectSendStream[Event]]] = defaultdict(set)

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[MemoryObjectReceiveStream[Event]]:
        send, receive = anyio.create_memory_object_stream[Event](LISTENER_BUFFER)
        self._listeners[job_id].add(send)
        try:
            yield receive
        finally:
            listeners = self._listeners.get(job_id)
            if listeners is not None:
                listeners.discard(send)
                if not listeners:
                    del self._listeners[job_id]
            send.close()
            receive.close()

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
        for send in list(self._listeners.get(event.job_id, ())):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                # Dropped, so it could miss even the terminal event: it is closed once its buffer is
                # read and its follower reads the log from then on (see streams.follow).
                send.close()
                self._listeners[event.job_id].discard(send)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._listeners[event.job_id].discard(send)

    @property
    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())
