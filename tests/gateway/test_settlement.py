"""Prices settled to what was produced: a hold at submit, one settle row, the final cost on Completed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from tests.conftest import admin_headers, bearer, make_settings
from tests.gateway.test_accounts import wait_for
from tests.sse import parse

pytestmark = pytest.mark.anyio

# 10 tokens for up to 5 s, 2 more per second after: 20 for the longest, 10 s
PRICED = {
    "pricing": {"base": 10, "per_second": 2, "base_seconds": 5, "option": "duration"},
    "options": {"duration": {"type": "integer", "min": 1, "max": 10, "default": 5}},
}


@asynccontextmanager
async def priced_gateway(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    app = create_app(make_settings(tmp_path, echo=PRICED))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            made = await client.post(
                "/admin/keys", json={"name": "k", "tokens": 100}, headers=admin_headers()
            )
            yield client, made.json()["key"]


async def generate(client: httpx.AsyncClient, key: str, prompt: str, **options: Any) -> list[dict[str, Any]]:
    response = await client.post(
        "/api/generate", json={"model": "echo", "prompt": prompt, "options": options}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    return [event for _, event in parse(response.text)]


async def ledger(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    return list((await client.get("/api/ledger?limit=100", headers=bearer(key))).json()["items"])


async def balance(client: httpx.AsyncClient, key: str) -> int:
    return int((await client.get("/api/balance", headers=bearer(key))).json()["token_balance"])


async def test_a_hold_is_settled_to_what_the_upstream_produced(tmp_path: Path) -> None:
    async with priced_gateway(tmp_path) as (client, key):
        quote = (
            await client.post("/api/quote", json={"model": "echo", "prompt": "x"}, headers=bearer(key))
        ).json()
        assert (quote["cost"], quote["hold"]) == (20, True)
        events = await generate(client, key, "made:7", duration=5)
        assert events[0]["cost"] == 20 and events[0]["balance"] == 80  # the hold: the price of 10 s
        assert events[-1]["status"] == "Completed" and events[-1]["cost"] == 14  # 7 s were made
        job = (await client.get(f"/api/generations/{events[0]['job_id']}", headers=bearer(key))).json()
        assert (job["cost"], job["hold"], job["refunded"]) == (14, 20, False)
        rows = await ledger(client, key)
        assert [(r["reason"], r["delta"]) for r in rows] == [("settle", 6), ("debit", -20), ("credit", 100)]
        assert rows[0]["job_id"] == job["id"] and "7" in rows[0]["note"]
        assert await balance(client, key) == 86 == sum(r["delta"] for r in rows)
        with anyio.fail_after(5):  # counted by the on-finished hook, just after the terminal event
            while "gateway_tokens_settled_total 6.0" not in (await client.get("/metrics")).text:
                await anyio.sleep(0.02)


async def test_without_a_report_the_price_of_the_request_is_charged(tmp_path: Path) -> None:
    async with priced_gateway(tmp_path) as (client, key):
        events = await generate(client, key, "nothing reported", duration=6)
        assert events[-1]["status"] == "Completed" and events[-1]["cost"] == 12
        assert [(r["reason"], r["delta"]) for r in await ledger(client, key)][:2] == [
            ("settle", 8),
            ("debit", -20),
        ]
        assert await balance(client, key) == 88


async def test_a_failed_held_job_is_refunded_the_whole_hold_and_never_settled(tmp_path: Path) -> None:
    async with priced_gateway(tmp_path) as (client, key):
        events = await generate(client, key, "fail made:3")
        assert events[-1]["status"] == "Error" and events[-1]["refunded"] is True
        reasons = [(r["reason"], r["delta"]) for r in await ledger(client, key)]
        assert reasons == [("refund", 20), ("debit", -20), ("credit", 100)]
        assert await balance(client, key) == 100


async def test_a_report_above_the_hold_settles_at_the_hold(tmp_path: Path) -> None:
    async with priced_gateway(tmp_path) as (client, key):
        events = await generate(client, key, "made:30")
        assert events[-1]["cost"] == 20
        assert [(r["reason"], r["delta"]) for r in await ledger(client, key)][:2] == [
            ("settle", 0),
            ("debit", -20),
        ]


async def test_a_fixed_price_is_not_held(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            made = await client.post(
                "/admin/keys", json={"name": "k", "tokens": 100}, headers=admin_headers()
            )
            key = made.json()["key"]
            events = await generate(client, key, "made:3")
            assert events[-1]["cost"] == 10
            job = await wait_for(client, key, events[0]["job_id"], "completed")
            assert job["hold"] is None
            assert [r["reason"] for r in await ledger(client, key)] == ["debit", "credit"]
