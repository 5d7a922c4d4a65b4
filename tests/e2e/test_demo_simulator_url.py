"""`gateway demo --simulator-url`: a demo on an already running `gateway simulator` (as replicas share one)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_restart import Demo, wait_until
from tests.servers import free_port

pytestmark = pytest.mark.e2e
SPEED = {"GATEWAY_SIMULATOR__SPEED": "20"}


class Simulator:
    """A `gateway simulator` process on a free loopback port."""

    def __init__(self, data_dir: Path, speed: str = SPEED["GATEWAY_SIMULATOR__SPEED"]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "simulator", "--port", str(self.port)],
            env={**os.environ, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_SIMULATOR__SPEED": speed},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline()
        # Keep draining its output (uvicorn logs to it) so a full pipe never blocks the server.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def wait_ready(self) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, f"gateway simulator exited: {self.first_line}"
            try:
                return httpx.get(self.url + "/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    running = Simulator(tmp_path / "simulator-data")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
def demo(tmp_path: Path, simulator: Simulator) -> Iterator[Demo]:
    running = Demo(tmp_path / "demo-data", simulator_url=simulator.url, env=SPEED)
    try:
        yield running
    finally:
        running.stop()


def test_simulator_says_where_it_listens(simulator: Simulator) -> None:
    assert f"--simulator-url {simulator.url}" in simulator.first_line
    assert httpx.get(simulator.url + "/", timeout=5).json()["speed"] == 20


def test_demo_runs_a_job_on_a_running_simulator(simulator: Simulator, demo: Demo) -> None:
    demo.start()
    assert any(f"from the simulator at {simulator.url}" in line for line in demo.output)
    assert demo.simulator_port != simulator.port
    headers = {"Authorization": f"Bearer {demo.key}"}
    created = httpx.post(
        demo.url + "/api/generations",
        json={"model": "suno", "prompt": "a sea shanty"},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    job = wait_until(
        lambda: (
            (j := demo.get(f"/api/generations/{job_id}"))["status"] in ("completed", "failed", "canceled")
            and j
        )
    )
    assert job["status"] == "completed", job
    download = httpx.get(job["url"], timeout=10)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("audio/")
    assert len(download.content) > 0
    # The task lives in the shared simulator's state; the demo started no simulator of its own.
    assert "a sea shanty" in (simulator.data_dir / "simulator" / "simulator.json").read_text()
    assert not (demo.data_dir / "simulator").exists()
