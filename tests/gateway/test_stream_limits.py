"""Open-stream caps (429 too_many_streams), and a client that never reads: dropped after the send timeout, resumed."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup

from gateway.app import create_app
from tests import fakes
from tests.conftest import admin_headers, bearer, make_settings
from tests.gateway.test_drain import assert_refused, new_key, running, services, until
from tests.servers import serving
from tests.sse import parse

pytestmark = pytest.mark.anyio


def assert_too_many_streams(response: httpx.Response) -> None:
    assert_refused(response, 429, "too_many_streams", 5)


async def held_job(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    created = await client.post(
        "/api/generations", json={"model": "echo", "prompt": "hold"}, headers=bearer(key)
    )
    assert created.status_code == 202, created.text
    job: dict[str, Any] = created.json()
    return job


def open_stream(tg: TaskGroup, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    """Follow `url` in the background (over ASGI the answer arrives whole, when the stream ends)."""

    async def follow() -> None:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text

    tg.start_soon(follow)


async def test_streams_over_the_key_cap_or_the_replica_cap_answer_429(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_streams_per_key=2, max_streams=3)
    async with running(settings) as (app, client):
        streams = services(app).streams
        alice, bob = await new_key(client), await new_key(client)
        job = await held_job(client, alice)
        events = f"/api/generations/{job['id']}/events"
        async with anyio.create_task_group() as tg:
            open_stream(tg, client, events, bearer(alice))
            open_stream(tg, client, job["events_url"].removeprefix("http://testserver"), {})
            await until(lambda: streams.count == 2)
            # alice holds two: a third is refused, by key or by the events_url token of her job alike
            assert_too_many_streams(await client.get(events, headers=bearer(alice)))
            assert_too_many_streams(await client.get(job["events_url"]))
            generate = await client.post(
                "/api/generate", json={"model": "echo", "prompt": "a song"}, headers=bearer(alice)
            )
            assert_too_many_streams(generate)
            balance = await client.get("/api/balance", headers=bearer(alice))
            assert balance.json()["token_balance"] == 90  # the refused generate created and debited nothing
            # bob is under his own cap, until the replica's is reached
            bob_job = await held_job(client, bob)
            bob_events = f"/api/generations/{bob_job['id']}/events"
            open_stream(tg, client, bob_events, bearer(bob))
            await until(lambda: streams.count == 3)
            assert_too_many_streams(await client.get(bob_events, headers=bearer(bob)))
            fakes.release()  # the jobs finish, their streams close, and their places are free again
        assert streams.count == 0
        again = await client.get(events, headers=bearer(alice))
        assert again.status_code == 200 and parse(again.text)[-1][1]["status"] == "Completed"


def stalled_client(port: int, path: str, key: str) -> socket.socket:
    """A client that asks for a stream with a tiny receive buffer, then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: the window stays small
    sock.connect(("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    sock.close()
    return b"".join(chunks)


def complete_events(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """The whole events of a cut chunked SSE response (a cut may leave the last one half-sent)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    text = bytearray()
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        text += rest[:size]
        body = rest[size + 2 :]
        if size == 0:
            break
    decoded = bytes(text).decode(errors="replace")
    return parse(decoded[: decoded.rfind("\n\n") + 2])


async def test_a_client_that_never_reads_is_dropped_after_the_send_timeout_and_resumes(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, stream_send_timeout_seconds=0.5)
    app = create_app(settings)
    async with serving(app) as base:
        port = int(base.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            made = await client.post(
                "/admin/keys", json={"name": "k", "tokens": 100}, headers=admin_headers()
            )
            key = made.json()["key"]
            created = await client.post(
                "/api/generations", json={"model": "echo", "prompt": "chatty"}, headers=bearer(key)
            )
            job_id = created.json()["id"]
            sock = stalled_client(port, f"/api/generations/{job_id}/events", key)
            registry = services(app).metrics.registry
            dropped = {"reason": "stalled"}
            await until(lambda: registry.get_sample_value("gateway_streams_ended_total", dropped) == 1)
            assert services(app).streams.count == 0  # its place under the caps is free again
            fakes.release("chatty")
            # The client wakes up: it reads what was sent before the cut, then resumes after it.
            seen = complete_events(await anyio.to_thread.run_sync(read_until_closed, sock))
            last = seen[-1][0] if seen else 0
            rest = await client.get(
                f"/api/generations/{job_id}/events", headers={**bearer(key), "Last-Event-ID": str(last)}
            )
            more = parse(rest.text)
    ids = [i for i, _ in seen + more]
    assert ids == list(range(1, len(ids) + 1))  # every event once, nothing lost at the cut
    assert more[-1][1]["status"] == "Completed"
