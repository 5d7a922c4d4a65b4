"""sse-starlette's EventSourceResponse run with one task per stream and two small helpers, leaving no garbage.

sse-starlette runs each response as an anyio task group of four tasks (the body, the keep-alive ping,
a shutdown listener and a disconnect listener) and ends it by cancelling the group. Every ended
stream then left about 140 objects in reference cycles (cancelled tasks, their tracebacks and frames)
and, through those frames, its whole connection (socket, transport, parser, buffers): nothing of it
was freed until a full collection, which after 10 000 streams held the event loop for about a second.

Here the body streams in the request's own task, as Starlette's StreamingResponse does; a plain
asyncio task listens for the client leaving (it ends by itself once the response is complete) and
another sends the keep-alive ping. Neither keeps a reference to itself, so a cancelled helper is freed
at once. The gateway ends its streams at a drain itself (gateway/streams/openstreams.py), so the shutdown
listener is not needed. Everything else — the headers, the encoding, the per-send timeout and
`SendTimeoutError`, HEAD and WebSocket requests — is sse-starlette's own.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.event import ensure_bytes
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("gateway.sse")


class EventStream(EventSourceResponse):
    """An EventSourceResponse whose body streams in the request's task; see the module's docstring."""

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        """One send, bounded by `send_timeout`: an asyncio timer rather than an anyio cancel scope per
        send (with thousands of streams the scope cost more than the send it guarded)."""
        if self.send_timeout is None:
            await send(message)
            return
        try:
            async with asyncio.timeout(self.send_timeout):
                await send(message)
        except TimeoutError:
            raise SendTimeoutError() from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].upper() == "HEAD":
            await super().__call__(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        stalled = False

        async def ping() -> None:
            nonlocal stalled
            try:
                while self.active:
                    await asyncio.sleep(self.ping_interval)
                    factory = self.ping_message_factory
                    message = ensure_bytes(
                        factory() if factory else ServerSentEvent(comment="ping"), self.sep
                    )
                    async with self._send_lock:  # never after the body's end, which sends under the lock
                        if not self.active:
                            return
                        await self._send_with_timeout(
                            send, {"type": "http.response.body", "body": message, "more_body": True}
                        )
            except SendTimeoutError:
                stalled = True
                streaming.cancel()
            except Exception:  # nobody awaits a helper: said here, and the stream ends
                log.exception("a stream's keep-alive ping failed")
                streaming.cancel()

        async def watch() -> None:
            try:
                await self._listen_for_disconnect(receive)
            except Exception:  # unable to hear the client leave, the stream ends rather than linger
                log.exception("a stream's disconnect listener failed")
            streaming.cancel()  # after the last send this cancels nothing: the body is done

        with anyio.CancelScope() as streaming:
            helpers = [loop.create_task(watch())]
            if self.ping_interval > 0:
                helpers.append(loop.create_task(ping()))
            try:
                await self._stream_response(send)
            finally:  # `active` stays as it is: still True, the stream was ended from outside (a drain)
                for helper in helpers:
                    helper.cancel()
                del helpers
        if stalled:
            raise SendTimeoutError()
        if self.background is not None:
            await self.background()
