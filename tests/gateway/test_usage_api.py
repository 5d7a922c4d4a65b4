"""GET /admin/usage and GET /admin/jobs: the admin token only, contract errors for bad input, real jobs counted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests import fakes
from tests.conftest import Harness, admin_headers, bearer
from tests.gateway.test_generate import assert_error

pytestmark = pytest.mark.anyio


async def run_jobs(harness: Harness, key: str, *prompts: str) -> None:
    for prompt in prompts:
        response = await harness.client.post(
            "/api/generate", json={"model": "echo", "prompt": prompt}, headers=bearer(key)
        )
        assert response.status_code == 200


async def test_usage_counts_the_jobs_run_through_the_api(harness: Harness) -> None:
    key, record = await harness.new_key(100)
    await run_jobs(harness, key, "a song", "please fail", "another song")
    response = await harness.client.get("/admin/usage?group_by=model", headers=admin_headers())
    assert response.status_code == 200
    body = response.json()
    assert body["group_by"] == ["model"] and body["from"] < body["to"]
    (echo,) = body["groups"]
    assert echo["model"] == "echo"
    assert (echo["tokens_debited"], echo["tokens_refunded"], echo["tokens_net"]) == (30, 10, 20)
    assert echo["jobs"] == {"completed": 2, "failed": 1, "canceled": 0}
    assert echo["duration_mean_seconds"] is not None and echo["duration_p95_seconds"] is not None
    assert body["totals"]["tokens_net"] == 20
    today = datetime.now(UTC).date().isoformat()
    by_day_and_key = (
        await harness.client.get(
            f"/admin/usage?group_by=day,key&from={today}&to={today}", headers=admin_headers()
        )
    ).json()
    assert [(g["day"], g["key"]) for g in by_day_and_key["groups"]] == [(today, record["id"])]
    earlier = (
        await harness.client.get("/admin/usage?from=2020-01-01&to=2020-01-02", headers=admin_headers())
    ).json()
    assert earlier["groups"] == [] and earlier["totals"]["tokens_debited"] == 0
    assert earlier["from"] == "2020-01-01T00:00:00Z" and earlier["to"] == "2020-01-03T00:00:00Z"


async def test_jobs_lists_live_and_recent_jobs_of_every_key(harness: Harness) -> None:
    first, first_record = await harness.new_key(100)
    second, _ = await harness.new_key(100)
    await run_jobs(harness, first, "a song")
    held = await harness.client.post(
        "/api/generations", json={"model": "echo", "prompt": "hold on"}, headers=bearer(second)
    )
    assert held.status_code == 202
    try:
        listed = (await harness.client.get("/admin/jobs", headers=admin_headers())).json()
        assert listed["total"] == 2 and listed["limit"] == 20 and listed["offset"] == 0
        assert listed["items"][0]["id"] == held.json()["id"]  # newest first
        running = (await harness.client.get("/admin/jobs?status=running", headers=admin_headers())).json()
        (live,) = running["items"]
        assert live["id"] == held.json()["id"] and live["status"] in ("queued", "processing")
        assert live["provider"] == "scripted" and live["key_id"] != first_record["id"]
        assert live["created_at"] and "progress" in live
        mine = (
            await harness.client.get(
                f"/admin/jobs?key={first_record['id']}&status=completed&provider=scripted",
                headers=admin_headers(),
            )
        ).json()
        assert mine["total"] == 1 and mine["items"][0]["key_id"] == first_record["id"]
        none = (await harness.client.get("/admin/jobs?provider=backup", headers=admin_headers())).json()
        assert none == {"items": [], "total": 0, "limit": 20, "offset": 0}
    finally:
        fakes.release()


@pytest.mark.parametrize(
    "query",
    [
        "group_by=week",
        "group_by=day,day",
        "group_by=",
        "from=yesterday",
        "to=2026-13-01",
        "from=2026-11-02&to=2026-11-01T00:00:00Z",
        "from=" + "9" * 5000,
        "to=9999-12-31",
        "to=0001-01-01",
    ],
)
async def test_bad_usage_queries_are_400(harness: Harness, query: str) -> None:
    assert_error(
        await harness.client.get(f"/admin/usage?{query}", headers=admin_headers()), 400, "invalid_request"
    )


@pytest.mark.parametrize("query", ["status=done", "limit=0", "limit=101", "offset=-1", "key=" + "k" * 300])
async def test_bad_jobs_queries_are_400(harness: Harness, query: str) -> None:
    assert_error(
        await harness.client.get(f"/admin/jobs?{query}", headers=admin_headers()), 400, "invalid_request"
    )


@pytest.mark.parametrize("path", ["/admin/usage", "/admin/jobs"])
async def test_admin_token_only(harness: Harness, path: str) -> None:
    key, _ = await harness.new_key(10)
    assert_error(await harness.client.get(path), 401, "unauthorized")
    assert_error(await harness.client.get(path, headers=bearer(key)), 403, "forbidden")
