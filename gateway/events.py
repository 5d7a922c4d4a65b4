"""Job events: the event model, its SSE encoding, and the fan-out to live listeners."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

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


class EventHub:
    """Fans each recorded event out to the live listeners of its job (in-process)."""

    def __init__(self) -> None:
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

    def publish(self, event: Event) -> None:
        for send in list(self._listeners.get(event.job_id, ())):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                pass  # the listener sees a gap in the numbering and reads the log
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._listeners[event.job_id].discard(send)

    @property
    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())
