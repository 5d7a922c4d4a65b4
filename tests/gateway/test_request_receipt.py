"""`gateway serve`'s server closes connections that do not send their request in time (half-open ones
too, by the hundred) and answers its own refusals in the contract's JSON, while it goes on serving."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from gateway.cli.serving import server_config
from tests.conftest import ADMIN, make_settings
from tests.servers import free_port, running

pytestmark = pytest.mark.anyio
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[int]:
    """The gateway under uvicorn exactly as `gateway serve` configures it, with short deadlines."""
    settings = make_settings(
        tmp_path,
        request_header_timeout_seconds=HEADER_TIMEOUT,
        request_body_timeout_seconds=BODY_TIMEOUT,
    )
    port = free_port()
    config = server_config(create_app(settings), settings, "127.0.0.1", port, "warning")
    async with running(config):
        yield port


def read_all(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (monotonic)."""
    sock.settimeout(within)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic()


def answer_of(raw: bytes) -> tuple[str, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, json.loads(body)


async def test_hundreds_of_half_open_connections_are_closed_on_time_and_the_server_serves(
    server: int,
) -> None:
    def open_half(count: int) -> list[socket.socket]:
        socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server))
            sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            socks.append(sock)
        return socks

    started = time.monotonic()
    socks = await anyio.to_thread.run_sync(open_half, 300)
    silent = [socket.create_connection(("127.0.0.1", server)) for _ in range(20)]  # say nothing at all
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server}") as client:
        assert (await client.get("/api/ping")).text == "pong"  # still serving beside them

    def drain(sock: socket.socket) -> tuple[bytes, float]:
        with sock:
            return read_all(sock, HEADER_TIMEOUT + 10)

    answers = [await anyio.to_thread.run_sync(drain, sock) for sock in socks]
    quiet = [await anyio.to_thread.run_sync(drain, sock) for sock in silent]
    for raw, closed_at in answers:
        status, headers, body = answer_of(raw)
        assert status == "HTTP/1.1 408 Request Timeout"
        assert headers["content-type"] == "application/json" and headers["connection"] == "close"
        assert body["status"] == "Error" and body["code"] == "request_timeout"
        assert closed_at - started < HEADER_TIMEOUT + 5
    assert all(raw == b"" and at - started < HEADER_TIMEOUT + 5 for raw, at in quiet)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server}") as client:
        assert (await client.get("/api/ping")).text == "pong"


async def test_a_body_that_stops_coming_is_answered_408(server: int) -> None:
    def slow_body() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", server)) as sock:
            sock.sendall(
                b"POST /admin/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {ADMIN}\r\n".encode()
                + b'Content-Length: 100\r\n\r\n{"name"'
            )
            return read_all(sock, BODY_TIMEOUT + 10)

    started = time.monotonic()
    raw, closed_at = await anyio.to_thread.run_sync(slow_body)
    status, _, body = answer_of(raw)
    assert status == "HTTP/1.1 408 Request Timeout" and body["code"] == "request_timeout"
    assert BODY_TIMEOUT - 0.2 < closed_at - started < BODY_TIMEOUT + 5


async def test_a_request_that_comes_in_time_is_served_however_slowly_its_stream_runs(server: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server}") as client:
        for _ in range(3):  # keep-alive: each request on the same connection gets its own deadline
            assert (await client.get("/api/ping")).text == "pong"
            await anyio.sleep(HEADER_TIMEOUT / 2)
        await anyio.sleep(HEADER_TIMEOUT * 1.5)  # idle past the header deadline between requests
        assert (await client.get("/api/ping")).text == "pong"


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"],
)
async def test_what_the_server_cannot_read_is_answered_in_the_contracts_json(
    server: int, request_bytes: bytes
) -> None:
    def send() -> bytes:
        with socket.create_connection(("127.0.0.1", server)) as sock:
            for start in range(0, len(request_bytes), 16_384):  # as a client's writes arrive
                try:
                    sock.sendall(request_bytes[start : start + 16_384])
                except (BrokenPipeError, ConnectionResetError):
                    break  # refused before the rest was sent: its answer is waiting
                time.sleep(0.01)
            return read_all(sock, 10)[0]

    status, headers, body = answer_of(await anyio.to_thread.run_sync(send))
    assert status == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/json"
    assert body == {
        "status": "Error",
        "message": "The request is not valid HTTP/1.1.",
        "code": "invalid_request",
    }


async def test_a_connection_over_the_cap_is_answered_503_not_left_hanging(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_connections=5, request_header_timeout_seconds=30)
    port = free_port()
    async with running(server_config(create_app(settings), settings, "127.0.0.1", port, "warning")):

        def over_the_cap() -> tuple[list[socket.socket], bytes]:
            held = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
            time.sleep(0.3)  # accepted: the server holds five
            with socket.create_connection(("127.0.0.1", port)) as extra:
                return held, read_all(extra, 10)[0]

        held, raw = await anyio.to_thread.run_sync(over_the_cap)
        status, headers, body = answer_of(raw)
        assert status == "HTTP/1.1 503 Service Unavailable" and headers["retry-after"] == "1"
        assert body["status"] == "Error" and body["code"] == "too_many_connections"
        for sock in held:
            sock.close()
        await anyio.sleep(0.3)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/api/ping")).text == "pong"  # room again once they closed
