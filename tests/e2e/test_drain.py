"""A rolling restart: `gateway demo` stopped with SIGTERM mid-job and started again, with clients following.

An EventSource-like client and the SDK each follow the job across the restart and must get every event
exactly once, under the same ids; a create that reaches the draining replica is refused with 503; the
job is neither failed nor refunded by the deploy.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_client import Gateway
from tests.e2e.test_restart import Demo, wait_until

pytestmark = pytest.mark.e2e
GRACE = 5
TERMINAL = ("Completed", "Error", "Canceled")


class EventSourceClient(threading.Thread):
    """Follows a job as a browser's EventSource does: after the stream ends, or the connection fails, it
    waits the reconnection time (a `retry:` field sets it) and asks again with Last-Event-ID, until the
    terminal event or a 204."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.endings: list[str] = []
        """How each connection ended: "clean", "error: …", "204", "terminal" or "status N"."""
        self.retries: list[int] = []
        self.start()

    def run(self) -> None:
        last_id, delay = None, 0.5
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            headers = dict(self.headers)
            if last_id is not None:
                headers["Last-Event-ID"] = str(last_id)
            try:
                ending = self._connect(headers)
            except httpx.HTTPError as exc:
                ending = f"error: {type(exc).__name__}"
            self.endings.append(ending)
            if ending in ("terminal", "204") or ending.startswith("status"):
                return
            if self.events:
                last_id = self.events[-1][0]
            if self.retries:
                delay = self.retries[-1] / 1000
            time.sleep(delay)

    def _connect(self, headers: dict[str, str]) -> str:
        with httpx.stream("GET", self.url, headers=headers, timeout=httpx.Timeout(10, read=60)) as response:
            if response.status_code == 204:
                return "204"
            if response.status_code != 200:
                return f"status {response.status_code}"  # EventSource fails the connection for good
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line == "":
                    if "data" in fields:
                        event = json.loads(fields["data"])
                        self.events.append((int(fields["id"]), event))
                        if event["status"] in TERMINAL:
                            return "terminal"
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "retry":
                        self.retries.append(int(value))
                    else:
                        fields[name] = value
        return "clean"


class SdkClient(threading.Thread):
    """The SDK's `events()`, which reconnects by itself."""

    def __init__(self, url: str, key: str, job_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.job_id = url, key, job_id
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with Gateway(self.url, self.key, max_reconnects=300, reconnect_delay=0.2) as gateway:
                for event in gateway.events(self.job_id):
                    self.events.append((event.id, event.data))
        except Exception as exc:
            self.error = exc


LATE_BODY = json.dumps({"model": "suno", "prompt": "a late song"}).encode()


def create_on_the_wire(port: int, key: str) -> socket.socket:
    """A create whose headers have reached the handler (it asked for the body) and whose body has not."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        (
            "POST /api/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(LATE_BODY)}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
    )
    assert sock.recv(1024).startswith(b"HTTP/1.1 100")  # the handler is reading the body now
    return sock


def finish_create(sock: socket.socket) -> tuple[str, dict[str, str], dict[str, Any]]:
    sock.sendall(LATE_BODY)
    raw = b""
    while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, json.loads(body)


def test_sigterm_mid_job_then_restart_every_client_resumes_exactly_once(tmp_path: Path) -> None:
    demo = Demo(
        tmp_path,
        env={
            "GATEWAY_SHUTDOWN_GRACE_SECONDS": str(GRACE),
            "GATEWAY_SIMULATOR__SPEED": "4",  # a luma video takes about 15 s: the restart falls inside it
            "GATEWAY_HEARTBEAT_SECONDS": "1",
        },
    )
    try:
        demo.start()
        headers = {"Authorization": f"Bearer {demo.key}"}
        created = httpx.post(
            demo.url + "/api/generations", json={"model": "luma", "prompt": "a slow pan"}, headers=headers
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        browser = EventSourceClient(f"{demo.url}/api/generations/{job_id}/events", headers)
        sdk = SdkClient(demo.url, demo.key, job_id)
        wait_until(lambda: len(browser.events) >= 2 and len(sdk.events) >= 2, timeout=30)
        late_create = create_on_the_wire(demo.port, demo.key)

        assert demo.process is not None
        demo.process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        wait_until(lambda: any("draining" in line for line in demo.output), timeout=10)
        status, answer_headers, answer = finish_create(late_create)
        assert status.startswith("HTTP/1.1 503"), (status, answer)
        assert (
            answer["code"] == "shutting_down" and answer["status"] == "Error" and answer["retry_after"] == 1
        )
        assert answer_headers["retry-after"] == "1"
        demo.process.wait(GRACE + 10)
        took = time.monotonic() - stopping
        assert demo.process.returncode in (0, -signal.SIGTERM), demo.process.returncode
        print(f"SIGTERM to exit: {took:.2f} s")
        # The open stream was ended cleanly, with the hint to come back in a second.
        assert browser.endings[0] == "clean" and browser.retries == [1000], browser.endings
        cut_at = len(browser.events)

        demo.start()  # same data dir and port: the clients find it again by themselves
        browser.join(90)
        sdk.join(90)
        assert not browser.is_alive() and not sdk.is_alive() and sdk.error is None, sdk.error
        job = demo.get(f"/api/generations/{job_id}")
        ledger = demo.get("/api/ledger?limit=100")["items"]
    finally:
        demo.stop()

    ids = [event_id for event_id, _ in browser.events]
    assert ids == list(range(1, len(ids) + 1)), ids  # every event exactly once, across the restart
    assert len(ids) > cut_at  # and some of them came from the restarted process
    assert browser.events[-1][1]["status"] == "Completed"
    assert sdk.events == browser.events  # the same events under the same ids for both clients
    assert browser.endings[-1] == "terminal"
    assert job["status"] == "completed" and not job["refunded"]  # the deploy cost the client nothing
    # the demo key's credit, then one debit; no refund, and nothing for the refused late create
    assert sorted(row["reason"] for row in ledger) == ["credit", "debit"], ledger
