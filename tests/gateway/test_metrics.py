"""/metrics in Prometheus text and the JSON access log (key prefix, never the key)."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import Harness, bearer
from tests.gateway.test_generations import create, wait_finished

pytestmark = pytest.mark.anyio


async def test_metrics_count_jobs_tokens_and_requests(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    for prompt in ("ok", "fail"):
        job = await create(harness, key, prompt)
        await wait_finished(harness, key, job["id"])
        await harness.client.get(f"/api/generations/{job['id']}", headers=bearer(key))
    response = await harness.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'gateway_jobs_total{provider="scripted",status="completed"} 1.0' in text
    assert 'gateway_jobs_total{provider="scripted",status="failed"} 1.0' in text
    assert "gateway_tokens_debited_total 20.0" in text
    assert "gateway_tokens_refunded_total 10.0" in text
    assert 'route="/api/generations/{job_id}",status="200"' in text
    assert "gateway_job_duration_seconds_bucket" in text and "gateway_open_streams 0.0" in text


async def test_access_log_is_json_with_key_prefix(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    key, _ = await harness.new_key(10)
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        await harness.client.get("/api/balance", headers=bearer(key))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]
    assert lines and lines[-1]["route"] == "/api/balance" and lines[-1]["status"] == 200
    assert lines[-1]["key"] == key[:10]
    assert key not in caplog.text


async def test_playground_is_served_without_a_cdn(harness: Harness) -> None:
    page = await harness.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # everything from the gateway
    script = await harness.client.get("/static/playground.js")
    assert script.status_code == 200 and "new EventSource(job.events_url)" in script.text
    assert "sessionStorage" in script.text
    assert (await harness.client.get("/static/playground.css")).status_code == 200


async def test_requests_are_counted_by_route_template_and_unknown_paths_as_unmatched(
    harness: Harness,
) -> None:
    key, _ = await harness.new_key(10)
    await harness.client.get("/api/generations/job_nothing_here", headers=bearer(key))
    await harness.client.get("/no/such/path")
    text = (await harness.client.get("/metrics")).text
    assert 'route="/api/generations/{job_id}",status="404"' in text
    assert 'route="unmatched",status="404"' in text


async def test_metrics_count_the_asyncio_tasks_alive(harness: Harness) -> None:
    import re

    text = (await harness.client.get("/metrics")).text
    found = re.search(r"^gateway_asyncio_tasks (\d+)\.0$", text, re.MULTILINE)
    assert found is not None and int(found.group(1)) >= 1  # at least the request's own task
