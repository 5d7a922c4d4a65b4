"""Accounts end to end: `gateway demo` on a running simulator with two Luma accounts, `a` refused as a
bad key. Every call for a job carries the credential of the account that took it (b), through a
cancel and through a SIGKILL and restart that re-attaches to the upstream task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.cluster import Simulator
from tests.e2e.test_demo_simulator_url import demo_on, running_simulator
from tests.e2e.test_restart import Demo, wait_until

pytestmark = pytest.mark.e2e
ADMIN = "e2e-admin"
ENV = {
    "GATEWAY_SIMULATOR__SPEED": "10",
    "GATEWAY_ADMIN_TOKEN": ADMIN,
    "GATEWAY_PROVIDERS__LUMA__ACCOUNTS": json.dumps(
        [{"name": "a", "credential_env": "LUMA_KEY_A"}, {"name": "b", "credential_env": "LUMA_KEY_B"}]
    ),
    "LUMA_KEY_A": "invalid",
    "LUMA_KEY_B": "key-b",
}
LUMA = "/luma/dream-machine/v1/generations"


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    yield from running_simulator(tmp_path, ENV)


@pytest.fixture
def demo(tmp_path: Path, simulator: Simulator) -> Iterator[Demo]:
    yield from demo_on(tmp_path, simulator, ENV)


def luma_calls(simulator: Simulator) -> list[dict[str, Any]]:
    calls = httpx.get(simulator.url + "/calls", timeout=5).json()["calls"]
    return [call for call in calls if call["path"].startswith(LUMA)]


def submit(demo: Demo, prompt: str) -> str:
    created = httpx.post(
        demo.url + "/api/generations",
        json={"model": "luma", "prompt": prompt},
        headers={"Authorization": f"Bearer {demo.key}"},
        timeout=10,
    )
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


def test_a_job_on_account_b_is_polled_cancelled_and_reattached_with_bs_credential(
    simulator: Simulator, demo: Demo
) -> None:
    demo.start()
    kept = submit(demo, "a slow pan over the sea")
    wait_until(lambda: demo.get(f"/api/generations/{kept}")["status"] == "processing")
    dropped = submit(demo, "a second shot")
    wait_until(lambda: demo.get(f"/api/generations/{dropped}")["status"] == "processing")
    cancelled = httpx.post(
        f"{demo.url}/api/generations/{dropped}/cancel",
        headers={"Authorization": f"Bearer {demo.key}"},
        timeout=10,
    )
    assert cancelled.json()["status"] == "canceled"

    providers = httpx.get(
        demo.url + "/admin/providers", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
    )
    (luma,) = [p for p in providers.json()["providers"] if p["name"] == "luma"]
    accounts = {a["name"]: a for a in luma["accounts"]}
    assert accounts["a"]["state"] == "disabled" and "401" in accounts["a"]["reason"]
    assert accounts["b"]["state"] == "active"

    before_kill = luma_calls(simulator)
    # the one call with a's credential is the submit it refused; every other carried b's
    assert [c["method"] for c in before_kill if c["credential"] == "invalid"] == ["POST"]
    assert {c["credential"] for c in before_kill if c["credential"] != "invalid"} == {"key-b"}
    assert any(c["method"] == "DELETE" for c in before_kill)  # the cancel, with b's credential

    demo.kill()
    demo.start()  # same data dir: the unfinished job is re-attached, not submitted again
    job = wait_until(
        lambda: (j := demo.get(f"/api/generations/{kept}"))["status"] in ("completed", "failed") and j
    )
    assert job["status"] == "completed", job
    after_restart = luma_calls(simulator)[len(before_kill) :]
    assert after_restart and all(c["method"] == "GET" for c in after_restart)
    assert {c["credential"] for c in after_restart} == {"key-b"}
