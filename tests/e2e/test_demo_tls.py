"""`gateway demo --tls-simulator`: the demo's own simulator over HTTPS, trusted by the gateway itself."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_restart import Demo

pytestmark = pytest.mark.e2e
TRUST_LINE = re.compile(r"export SSL_CERT_FILE=(\S+)")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    clean = {name: "" for name in os.environ if name.startswith("SSL_CERT")}
    running = Demo(tmp_path, env={"GATEWAY_SIMULATOR__SPEED": "20", **clean}, args=["--tls-simulator"])
    try:
        yield running
    finally:
        running.stop()


def test_a_job_runs_on_the_https_simulator(demo: Demo, tmp_path: Path) -> None:
    demo.start()
    simulator_url = f"https://127.0.0.1:{demo.simulator_port}"
    assert any(f"from the simulator at {simulator_url}" in line for line in demo.output)
    trust = next(m.group(1) for line in demo.output if (m := TRUST_LINE.search(line)))
    assert Path(trust) == (tmp_path / "simulator" / "tls" / "trust.pem").resolve()
    index = httpx.get(simulator_url + "/", verify=ssl.create_default_context(cafile=trust), timeout=10)
    assert index.json()["providers"]["pika"] == simulator_url + "/fal"

    job = demo.run_job("pika", "a fox in the snow")
    assert job["status"] == "completed", job  # submitted, polled and mirrored over HTTPS
    download = httpx.get(job["url"], timeout=10)
    assert download.status_code == 200 and download.headers["content-type"] == "video/webm"
