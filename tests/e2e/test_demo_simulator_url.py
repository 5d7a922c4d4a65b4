"""`gateway demo --simulator-url`: a demo on an already running `gateway simulator` (as replicas share one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.cluster import Simulator
from tests.e2e.test_restart import Demo

pytestmark = pytest.mark.e2e
SPEED = {"GATEWAY_SIMULATOR__SPEED": "20"}


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    running = Simulator(tmp_path / "simulator-data", SPEED["GATEWAY_SIMULATOR__SPEED"])
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
    first_line = simulator.log_path.read_text().splitlines()[0]
    assert f"--simulator-url {simulator.url}" in first_line
    assert httpx.get(simulator.url + "/", timeout=5).json()["speed"] == 20


def test_demo_runs_a_job_on_a_running_simulator(simulator: Simulator, demo: Demo) -> None:
    demo.start()
    assert any(f"from the simulator at {simulator.url}" in line for line in demo.output)
    assert demo.simulator_port != simulator.port
    job = demo.run_job("suno", "a sea shanty")
    assert job["status"] == "completed", job
    download = httpx.get(job["url"], timeout=10)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("audio/")
    assert len(download.content) > 0
    # The task lives in the shared simulator's state; the demo started no simulator of its own.
    assert "a sea shanty" in (simulator.state_dir / "simulator.json").read_text()
    assert not (demo.data_dir / "simulator").exists()
