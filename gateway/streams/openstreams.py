"""This replica's open event streams: the per-key and per-process caps, dropping stalled clients, ending all at a drain."""

from __future__ import annotations

import logging
from contextlib import ExitStack

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.contract.errors import TooManyStreams
from gateway.drain import Drain
from gateway.metrics import Metrics
from gateway.streams.replay import SSE_HEADERS

log = logging.getLogger("gateway.streams")

# A stream refused for the caps may be asked for again after this long: streams end with their jobs.
CAP_RETRY_AFTER_SECONDS = 5
# The last words of a stream ended by a drain go to a client that may not be reading: not waited on longer.
FAREWELL_SECONDS = 1.0


class StreamSlot:
    """One open stream's place under the caps, and the scope a drain cancels to end it."""

    __slots__ = ("key_id", "scope")

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        self.scope = anyio.CancelScope()


class OpenStreams:
    """Counts the event streams open on this replica, refuses those over a cap, and ends them all at a drain.

    The caps hold per replica: `per_key` streams of one API key (an `events_url` stream counts for the
    key that owns the job) and `total` streams altogether, each over its cap answered `429
    too_many_streams` before the stream starts — and, on `POST /api/generate`, before anything is debited.
    """

    def __init__(self, per_key: int, total: int, drain: Drain, metrics: Metrics, retry_ms: int) -> None:
        self.per_key = per_key
        self.total = total
        self.drain = drain
        self.metrics = metrics
        self.retry_ms = retry_ms
        """The `retry:` hint a stream ended by the drain closes with (how soon to reconnect)."""
        self._slots: set[StreamSlot] = set()
        self._by_key: dict[str, int] = {}
        drain.on_begin(self.end_all)

    @property
    def count(self) -> int:
        return len(self._slots)

    def held_by(self, key_id: str) -> int:
        return self._by_key.get(key_id, 0)

    def open(self, key_id: str) -> StreamSlot:
        """A place for one more stream of `key_id`, or 429 `too_many_streams`; `release` gives it back."""
        if len(self._slots) >= self.total:
            raise TooManyStreams(
                f"This replica holds its maximum of {self.total} open event streams; try again shortly.",
                CAP_RETRY_AFTER_SECONDS,
            )
        held = self._by_key.get(key_id, 0)
        if held >= self.per_key:
            raise TooManyStreams(
                f"This API key holds its maximum of {self.per_key} open event streams; close one first.",
                CAP_RETRY_AFTER_SECONDS,
            )
        slot = StreamSlot(key_id)
        self._slots.add(slot)
        self._by_key[key_id] = held + 1
        return slot

    def release(self, slot: StreamSlot) -> None:
        if slot not in self._slots:
            return
        self._slots.discard(slot)
        held = self._by_key[slot.key_id] - 1
        if held:
            self._by_key[slot.key_id] = held
        else:
            del self._by_key[slot.key_id]

    def end_key(self, key_id: str) -> None:
        """End the open streams of one key (it was revoked): each closes as if its events had run out."""
        for slot in list(self._slots):
            if slot.key_id == key_id:
                slot.scope.cancel()

    def end_all(self) -> None:
        """End every open stream (the drain): each closes with a `retry:` hint, and its client resumes."""
        for slot in list(self._slots):
            slot.scope.cancel()

    def serve(
        self, slot: StreamSlot, response: EventSourceResponse, closing: ExitStack | None = None
    ) -> ManagedStream:
        """`response` as an ASGI app that holds `slot` while it runs and gives it back after; `closing`
        (the stream's live subscription) is closed after it too, even if the stream never started."""
        return ManagedStream(self, slot, response, closing)

    def retry_hint(self) -> Response:
        """A stream asked for while draining: no events, only when to reconnect (EventSource does)."""
        return Response(f"retry: {self.retry_ms}\n\n", media_type="text/event-stream", headers=SSE_HEADERS)


class ManagedStream:
    """An event stream under the caps: dropped when its client stops reading, ended cleanly by a drain.

    A stalled client is dropped when a send waits longer than the response's `send_timeout`; what it
    holds unread stays in the socket's buffers (bounded by the transport's high-water mark), and when
    it reads again it finds the stream cut and resumes after the last event it has. A stream ended by
    the drain is closed properly: a `retry:` line, then the end of the body, so EventSource and the
    SDK reconnect (to another replica, or to this one once it is back) with their Last-Event-ID.
    """

    def __init__(
        self,
        streams: OpenStreams,
        slot: StreamSlot,
        response: EventSourceResponse,
        closing: ExitStack | None = None,
    ) -> None:
        self.streams = streams
        self.slot = slot
        self.response = response
        self.closing = closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streams, response = self.streams, self.response
        started = complete = False

        async def send_tracked(message: Message) -> None:
            nonlocal started, complete
            started = True
            complete = message["type"] == "http.response.body" and not message.get("more_body", False)
            await send(message)

        try:
            if not streams.drain.draining:
                with self.slot.scope:
                    await response(scope, receive, send_tracked)
        except SendTimeoutError:
            streams.metrics.streams_ended.labels("stalled").inc()
            log.info("dropped a stream whose client read nothing for %s s", response.send_timeout)
            return
        finally:
            streams.release(self.slot)
            if self.closing is not None:
                self.closing.close()
        if not complete and response.active and streams.drain.draining:  # neither finished nor left: drained
            streams.metrics.streams_ended.labels("draining").inc()
            await self._farewell(send, started)
        elif started and not complete and self.slot.scope.cancel_called:  # its key was revoked
            streams.metrics.streams_ended.labels("revoked").inc()
            with anyio.move_on_after(FAREWELL_SECONDS):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _farewell(self, send: Send, started: bool) -> None:
        with anyio.move_on_after(FAREWELL_SECONDS):
            if not started:
                start = {"type": "http.response.start", "status": 200, "headers": self.response.raw_headers}
                await send(start)
            hint = f"retry: {self.streams.retry_ms}\n\n".encode()
            await send({"type": "http.response.body", "body": hint, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
