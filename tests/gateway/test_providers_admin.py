"""GET /admin/providers and the circuit-state metric: what an operator sees of each provider's health."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from gateway.upstreams.health import RecentCalls
from tests import fakes
from tests.conftest import Harness, admin_headers, bearer
from tests.gateway.test_generate import assert_error

pytestmark = pytest.mark.anyio


async def providers(harness: Harness) -> dict[str, dict[str, Any]]:
    response = await harness.client.get("/admin/providers", headers=admin_headers())
    assert response.status_code == 200
    return {p["name"]: p for p in response.json()["providers"]}


async def test_configured_and_unconfigured_providers(harness: Harness) -> None:
    listed = await providers(harness)
    scripted, luma = listed["scripted"], listed["luma"]
    assert scripted["configured"] is True and scripted["state"] == "closed" and scripted["reason"] is None
    assert scripted["models"] == ["echo"] and scripted["in_flight"] == 0 and scripted["cap"] >= 1
    assert scripted["requests"] == 0 and scripted["error_rate"] is None
    assert luma["configured"] is False and luma["state"] == "unconfigured"
    assert "LUMAAI_API_KEY" in luma["reason"]


async def test_a_held_job_is_in_flight(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    created = await harness.client.post(
        "/api/generations", json={"model": "echo", "prompt": "hold it"}, headers=bearer(key)
    )
    assert created.status_code == 202
    try:
        for _ in range(200):
            if (await providers(harness))["scripted"]["in_flight"] == 1:
                break
            await anyio.sleep(0.01)
        assert (await providers(harness))["scripted"]["in_flight"] == 1
    finally:
        fakes.release()


async def test_an_open_circuit_shows_with_its_reason_and_in_metrics(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    for _ in range(3):  # circuit_failures = 3 in the test settings
        response = await harness.client.post(
            "/api/generate", json={"model": "echo", "prompt": "unavailable"}, headers=bearer(key)
        )
        assert response.status_code == 200
    scripted = (await providers(harness))["scripted"]
    assert scripted["state"] == "open" and "3 failures" in scripted["reason"] and scripted["retry_after"] > 0
    text = (await harness.client.get("/metrics")).text
    assert 'gateway_provider_circuit_state{provider="scripted",state="open"} 1.0' in text
    assert 'gateway_provider_circuit_state{provider="scripted",state="closed"} 0.0' in text
    assert 'gateway_provider_circuit_state{provider="luma",state="unconfigured"} 1.0' in text


async def test_admin_token_only(harness: Harness) -> None:
    key, _ = await harness.new_key(10)
    assert_error(await harness.client.get("/admin/providers"), 401, "unauthorized")
    assert_error(await harness.client.get("/admin/providers", headers=bearer(key)), 403, "forbidden")


def test_recent_calls_count_errors_and_latency_within_the_window() -> None:
    now = [1000.0]
    recent = RecentCalls(window=60, clock=lambda: now[0])
    recent.observe("luma", 500, 2.0)  # will have left the window
    now[0] += 61
    for status, seconds in [(200, 0.1), (200, 0.2), (404, 0.3), (503, 0.4), (None, 5.0)] + [(200, 0.05)] * 15:
        recent.observe("luma", status, seconds)
    seen = recent.recent("luma")
    # 20 calls: the 503 and the connection failure are errors; a 404 is the request's fault
    assert (seen.requests, seen.errors, seen.error_rate) == (20, 2, 0.1)
    assert seen.latency_p50_ms == 50.0 and seen.latency_p95_ms == 400.0
    assert recent.recent("suno").requests == 0 and recent.recent("suno").latency_p95_ms is None
