"""Restart recovery: `gateway demo` killed with SIGKILL mid-job, started again on the same data dir."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.e2e
KEY_LINE = re.compile(r"\(shown once\): (gw_\S+)")


class Demo:
    """A `gateway demo` process; its first start prints the demo key."""

    def __init__(
        self,
        data_dir: Path,
        *,
        simulator_url: str | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        """`simulator_url`: use that running `gateway simulator` instead of starting one; `env` is
        added to (and wins over) the environment below; `args` go on `gateway demo`'s command line."""
        self.args = list(args)
        self.data_dir = data_dir
        self.port = free_port()
        self.simulator_port = free_port()
        self.simulator_url = simulator_url
        self.extra_env = dict(env or {})
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.key = ""
        self.output: list[str] = []
        """What the last start printed (read on in the background once it started)."""

    def start(self) -> None:
        env = {
            **os.environ,
            "GATEWAY_DATA_DIR": str(self.data_dir),
            "GATEWAY_SIMULATOR__SPEED": "10",
            "GATEWAY_PROVIDERS__LUMA__POLL_INTERVAL": "0.1",
            "GATEWAY_PROVIDERS__SUNO__POLL_INTERVAL": "0.1",
            **self.extra_env,
        }
        simulator = (
            ["--simulator-url", self.simulator_url]
            if self.simulator_url
            else ["--simulator-port", str(self.simulator_port)]
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", "--port", str(self.port), *simulator, *self.args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        self.output = seen = []
        while time.monotonic() < deadline and self.process.poll() is None:
            line = self.process.stdout.readline()
            seen.append(line)
            if match := KEY_LINE.search(line):
                self.key = self.key or match.group(1)
            if "Application startup complete" in line:
                # Keep reading its output (into self.output) so a full pipe never blocks the server.
                threading.Thread(target=self._keep, args=(self.process.stdout, seen), daemon=True).start()
                return
        raise AssertionError(
            "gateway demo did not start:\n" + "".join(seen[-30:]) + self.process.stdout.read()
        )

    @staticmethod
    def _keep(stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=10)
        response.raise_for_status()
        return response.json()

    def run_job(self, model: str, prompt: str) -> dict[str, Any]:
        """Creates a job with the demo key and waits for it to finish; the finished job object."""
        created = httpx.post(
            self.url + "/api/generations",
            json={"model": model, "prompt": prompt},
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )
        assert created.status_code == 202, created.text
        path = f"/api/generations/{created.json()['id']}"
        job: dict[str, Any] = wait_until(
            lambda: (j := self.get(path))["status"] in ("completed", "failed", "canceled") and j
        )
        return job


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    yield running
    running.stop()


def wait_until(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_sigkill_mid_job_then_restart_finishes_it(demo: Demo) -> None:
    demo.start()
    headers = {"Authorization": f"Bearer {demo.key}"}
    started = httpx.post(
        demo.url + "/api/generations",
        json={"model": "luma", "prompt": "a slow pan"},
        headers=headers,
        timeout=10,
    )
    assert started.status_code == 202
    job_id = started.json()["id"]
    # Wait until the upstream task exists and has made progress, then kill the server outright.
    wait_until(lambda: demo.get(f"/api/generations/{job_id}")["status"] == "processing")
    demo.kill()

    demo.start()  # same data dir; the demo prints a new key, the old one still works
    job = wait_until(
        lambda: (j := demo.get(f"/api/generations/{job_id}"))["status"] in ("completed", "failed") and j
    )
    assert job["status"] == "completed", job
    assert job["cost"] == 30
    stream = httpx.get(f"{demo.url}/api/generations/{job_id}/events", headers=headers, timeout=10)
    ids = [int(line[4:]) for line in stream.text.splitlines() if line.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1))  # numbering went on where it stopped
    assert stream.text.count('"status":"Processing started"') == 1
    ledger = demo.get("/api/ledger?limit=100")
    assert [r["reason"] for r in ledger["items"]].count("debit") == 1  # charged once
    assert sum(r["delta"] for r in ledger["items"]) == demo.get("/api/balance")["token_balance"] == 970
