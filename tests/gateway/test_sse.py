"""The lean SSE response: what it sends, how it ends, and that an ended stream is freed at once."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from sse_starlette import ServerSentEvent
from sse_starlette.sse import SendTimeoutError

from gateway.streams.sse import EventStream

pytestmark = pytest.mark.anyio

SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}


class Client:
    """The server side of one connection: what was sent, and a receive that reports a disconnect."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.complete = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete.set()

    async def receive(self) -> dict[str, Any]:
        # like uvicorn: a pending receive returns once the client leaves or the response is complete
        waits = [asyncio.ensure_future(self.gone.wait()), asyncio.ensure_future(self.complete.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return {"type": "http.disconnect"}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Only reference counting frees anything while the test runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def events(n: int, pause: float = 0) -> AsyncIterator[bytes]:
    for seq in range(1, n + 1):
        if pause:
            await anyio.sleep(pause)
        yield f"id: {seq}\ndata: {seq}\n\n".encode()


async def test_a_stream_sends_its_events_then_ends_and_is_freed_without_the_collector(
    no_collector: None,
) -> None:
    client = Client()
    response = EventStream(events(3), ping=0.01, sep="\n")
    freed = weakref.ref(response)
    await response(SCOPE, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start"
    assert client.body == b"id: 1\ndata: 1\n\nid: 2\ndata: 2\n\nid: 3\ndata: 3\n\n"
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    del response
    await asyncio.sleep(0)  # the cancelled helpers run to their end
    assert freed() is None, "an ended stream stayed in a reference cycle"


async def test_a_client_that_leaves_ends_the_body_and_frees_the_stream(no_collector: None) -> None:
    client = Client()
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
                await anyio.sleep(0.01)
        finally:
            closed.set()

    response = EventStream(endless(), ping=0, sep="\n")
    freed = weakref.ref(response)
    async with anyio.create_task_group() as tg:
        tg.start_soon(response, SCOPE, client.receive, client.send)
        await anyio.sleep(0.05)
        client.gone.set()
    assert closed.is_set()
    assert not response.active
    assert client.sent[-1]["more_body"] is True  # cut, not completed
    del response
    await asyncio.sleep(0)
    assert freed() is None


async def test_a_quiet_stream_is_kept_alive_by_pings() -> None:
    client = Client()
    response = EventStream(
        events(2, pause=0.2),
        ping=0.05,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep="\n"),
    )
    await response(SCOPE, client.receive, client.send)
    body = client.body.decode()
    assert body.count(": ping\n\n") >= 4
    assert body.replace(": ping\n\n", "") == "id: 1\ndata: 1\n\nid: 2\ndata: 2\n\n"  # pings only between
    assert body.index(": ping") < body.index("id: 1")
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_ping_the_client_does_not_read_ends_the_stream_as_stalled() -> None:
    client = Client()
    stuck = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message.get("body", b"").startswith(b":"):
            await stuck.wait()  # the socket's buffers are full
        await client.send(message)

    response = EventStream(events(1, pause=5), ping=0.02, sep="\n", send_timeout=0.05)
    with anyio.fail_after(2), pytest.raises(SendTimeoutError):
        await response(SCOPE, client.receive, send)


async def test_a_stream_cancelled_from_outside_stays_active_for_its_farewell() -> None:
    client = Client()
    response = EventStream(events(1, pause=5), ping=0, sep="\n")
    with anyio.move_on_after(0.05):
        await response(SCOPE, client.receive, client.send)
    assert response.active  # neither finished nor left: the drain's farewell goes out after it


async def test_head_is_answered_by_sse_starlette_without_a_stream() -> None:
    client = Client()
    await EventStream(events(3), sep="\n")({**SCOPE, "method": "HEAD"}, client.receive, client.send)
    assert client.body == b""
    assert client.sent[-1]["more_body"] is False


async def test_an_event_the_client_does_not_take_ends_the_stream_as_stalled_and_closes_the_body() -> None:
    client = Client()
    closed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"
        finally:
            closed.set()

    async def send(message: dict[str, Any]) -> None:
        if message.get("body") == b"data: 2\n\n":
            await asyncio.Event().wait()  # the socket's buffers are full, for good
        await client.send(message)

    response = EventStream(body(), ping=0, sep="\n", send_timeout=0.05)
    with anyio.fail_after(2), pytest.raises(SendTimeoutError):
        await response(SCOPE, client.receive, send)
    assert client.body == b"data: 1\n\n"
    assert closed.is_set()


async def test_no_ping_follows_the_end_of_the_body() -> None:
    client = Client()
    sent = client.send

    async def slow_end(message: dict[str, Any]) -> None:
        await sent(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            await asyncio.sleep(0.05)  # the closing send takes a while: pings fall due meanwhile

    async def until_gone() -> dict[str, Any]:  # the client stays: nothing but the end ends the body
        await client.gone.wait()
        return {"type": "http.disconnect"}

    response = EventStream(events(1), ping=0.01, sep="\n")
    await response(SCOPE, until_gone, slow_end)
    await asyncio.sleep(0.05)  # a ping still due would be sent by now
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_disconnect_listener_that_fails_ends_the_stream_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client()

    async def broken_receive() -> dict[str, Any]:
        raise RuntimeError("receive broke")

    response = EventStream(events(100, pause=0.02), ping=0, sep="\n")
    with anyio.fail_after(1):  # not the 2 s the events would take: unable to hear the client, it ends
        await response(SCOPE, broken_receive, client.send)
    assert client.body.count(b"data: ") < 100
    assert "disconnect listener failed" in caplog.text and "receive broke" in caplog.text
