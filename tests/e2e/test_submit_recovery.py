"""A gateway SIGKILLed between sending a submit and recording its upstream id, then started again:
ComfyUI's prompt is found and followed (one submit upstream); a hosted provider's job ends
`submit_uncertain`, refunded once, and is not sent again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_restart import Demo, wait_until
from tests.servers import free_port

pytestmark = pytest.mark.e2e


class Simulator:
    """A `python -m providers.simulator` process keeping its state in a file the test reads."""

    def __init__(self, state_dir: Path) -> None:
        self.state_file = state_dir / "simulator.json"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "providers.simulator", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--speed", "10", "--state-dir", str(state_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._up, timeout=30)

    def _up(self) -> bool:
        try:
            return httpx.get(self.url + "/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def submits(self, protocol: str) -> int:
        """How many tasks of one protocol the simulator was asked to create."""
        try:
            tasks = json.loads(self.state_file.read_text())["tasks"]
        except (OSError, ValueError):
            return 0
        return sum(1 for record in tasks.values() if record.get("protocol") == protocol)

    def stop(self) -> None:
        # Killed, not terminated: its held `sim:hang` answer would keep uvicorn's graceful shutdown
        # waiting for two minutes, and nothing here is about the simulator's own shutdown.
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    running = Simulator(tmp_path / "simulator")
    yield running
    running.stop()


@pytest.fixture
def gateway(tmp_path: Path, simulator: Simulator) -> Iterator[Demo]:
    env = {f"GATEWAY_PROVIDERS__{name}__POLL_INTERVAL": "0.1" for name in ("LOCAL", "LUMA")}
    running = Demo(tmp_path / "gateway", simulator_url=simulator.url, env={**os.environ, **env})
    yield running
    running.stop()


def killed_mid_submit(gateway: Demo, simulator: Simulator, model: str, protocol: str) -> str:
    """A job whose submit the simulator received and holds the answer of; the gateway killed then,
    and started again on the same data dir."""
    gateway.start()
    created = httpx.post(
        gateway.url + "/api/generations",
        json={"model": model, "prompt": "a lighthouse at dusk sim:hang"},
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=10,
    )
    assert created.status_code == 202, created.text
    wait_until(lambda: simulator.submits(protocol) == 1)  # upstream has it; the gateway has no id
    job: dict[str, Any] = gateway.get(f"/api/generations/{created.json()['id']}")
    assert job["status"] in ("queued", "processing")
    gateway.kill()
    gateway.start()
    return str(job["id"])


def finished(gateway: Demo, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = wait_until(
        lambda: (j := gateway.get(f"/api/generations/{job_id}"))["status"] in ("completed", "failed") and j
    )
    return job


def ledger_reasons(gateway: Demo, job_id: str) -> list[str]:
    items = gateway.get("/api/ledger?limit=100")["items"]
    return sorted(row["reason"] for row in items if row["job_id"] == job_id)


def test_comfyui_reattaches_to_the_prompt_it_sent_before_the_crash(
    gateway: Demo, simulator: Simulator
) -> None:
    job_id = killed_mid_submit(gateway, simulator, "local", "comfyui")
    job = finished(gateway, job_id)
    assert job["status"] == "completed", job
    assert simulator.submits("comfyui") == 1  # followed the prompt it had sent: no second render
    assert ledger_reasons(gateway, job_id) == ["debit"]
    stream = httpx.get(
        f"{gateway.url}/api/generations/{job_id}/events",
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=10,
    )
    assert stream.text.count('"status":"Processing started"') == 1


def test_a_hosted_provider_ends_submit_uncertain_refunded_once(gateway: Demo, simulator: Simulator) -> None:
    job_id = killed_mid_submit(gateway, simulator, "luma", "luma")
    job = finished(gateway, job_id)
    assert (job["status"], job["error_code"], job["refunded"]) == ("failed", "submit_uncertain", True), job
    assert ledger_reasons(gateway, job_id) == ["debit", "refund"]
    assert gateway.get("/api/balance")["token_balance"] == 1000
    assert simulator.submits("luma") == 1  # not sent a second time
    stream = httpx.get(
        f"{gateway.url}/api/generations/{job_id}/events",
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=10,
    )
    last = json.loads([line for line in stream.text.splitlines() if line.startswith("data: ")][-1][6:])
    assert last["status"] == "Error" and last["code"] == "submit_uncertain" and last["refunded"] is True
