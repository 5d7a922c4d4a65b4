"""The HTTP/1.1 protocol `gateway serve` runs: uvicorn's h11 protocol with deadlines for receiving each
request, a cap on open connections, and the contract's JSON body for the refusals the server makes
itself (408, 400, 503)."""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.settings import Settings


def _answer(status: int, reason: str, message: str, code: str) -> bytes:
    """A whole response that closes the connection, written without h11 (which cannot answer a request
    whose line it has not read yet)."""
    body = json.dumps({"status": "Error", "message": message, "code": code}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


TIMED_OUT = _answer(
    408, "Request Timeout", "The request did not arrive in time; send it again.", "request_timeout"
)
NOT_HTTP = _answer(400, "Bad Request", "The request is not valid HTTP/1.1.", "invalid_request")
TOO_MANY = _answer(
    503,
    "Service Unavailable",
    "This server holds all the connections it takes; try again.",
    "too_many_connections",
).replace(b"connection: close\r\n", b"connection: close\r\nretry-after: 1\r\n")


class ReceiptDeadlines(H11Protocol):
    """uvicorn's h11 protocol, which waits for a request's line and headers without end (its keep-alive
    timer runs only between requests): here a connection gets `header_timeout` from its start, and a
    request from its first byte, to send its line and headers, then `body_timeout` for its body.
    Past a deadline the connection is closed, with a 408 when part of a request came."""

    header_timeout = 10.0
    body_timeout = 60.0
    max_connections = 20000
    _deadline: asyncio.TimerHandle | None = None
    _waiting_for: str = ""  # "headers" or "body": what the deadline is set for
    _bytes_of_request = 0  # bytes received since the last request was whole

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:  # answered at once, not left to hang
            transport.write(TOO_MANY)
            transport.close()
            return
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._bytes_of_request += len(data)
        super().data_received(data)
        their = self.conn.their_state
        if their is h11.SEND_BODY:
            if self._waiting_for != "body":
                self._arm("body")
        elif their is h11.IDLE:
            if self._waiting_for != "headers":  # a request's first bytes after a keep-alive pause
                self._arm("headers")
        else:  # the request came whole (DONE), or the connection is closing
            self._disarm()
            self._bytes_of_request = 0

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot read (a malformed line, headers over its limit): the contract's 400."""
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(NOT_HTTP)
            self.transport.close()

    def _arm(self, waiting_for: str) -> None:
        self._disarm()
        self._waiting_for = waiting_for
        delay = self.header_timeout if waiting_for == "headers" else self.body_timeout
        self._deadline = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = ""

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        response_started = self.cycle is not None and self.cycle.response_started
        if self._bytes_of_request and not response_started:
            self.transport.write(TIMED_OUT)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


def protocol_for(settings: Settings) -> type[ReceiptDeadlines]:
    """The protocol class with this configuration's deadlines (uvicorn makes one per connection)."""
    return type(
        "ConfiguredReceiptDeadlines",
        (ReceiptDeadlines,),
        {
            "header_timeout": settings.request_header_timeout_seconds,
            "body_timeout": settings.request_body_timeout_seconds,
            "max_connections": settings.max_connections,
        },
    )
