"""The operators' key API: create (key shown once), list, read, update, revoke, credit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import Harness, admin_headers, bearer, make_settings
from tests.gateway.test_generate import assert_error, balance_of, ledger_of

pytestmark = pytest.mark.anyio


async def test_create_shows_the_key_once_and_stores_only_a_hash(harness: Harness) -> None:
    response = await harness.client.post(
        "/admin/keys",
        json={
            "name": "reseller",
            "tokens": 50,
            "models": ["echo"],
            "rate_limit_per_minute": 5,
            "max_concurrent_jobs": 2,
        },
        headers=admin_headers(),
    )
    assert response.status_code == 201
    body = response.json()
    plain = body["key"]
    assert plain.startswith("gw_") and len(plain) >= 35
    assert body["token_balance"] == 50 and body["models"] == ["echo"] and body["rate_limit_per_minute"] == 5
    shown = (await harness.client.get(f"/admin/keys/{body['id']}", headers=admin_headers())).json()
    assert "key" not in shown and shown["prefix"] == plain[:10]
    listed = (await harness.client.get("/admin/keys", headers=admin_headers())).json()["items"]
    assert [k["id"] for k in listed] == [body["id"]] and "key" not in listed[0]
    database = (harness.settings.db_path).read_bytes()
    assert plain.encode() not in database
    assert await balance_of(harness, plain) == 50


async def test_update_and_credit(harness: Harness) -> None:
    key, record = await harness.new_key(10)
    patched = await harness.client.patch(
        f"/admin/keys/{record['id']}",
        json={"name": "renamed", "models": None, "max_concurrent_jobs": 3},
        headers=admin_headers(),
    )
    assert (
        patched.status_code == 200
        and patched.json()["name"] == "renamed"
        and patched.json()["max_concurrent_jobs"] == 3
    )
    credited = await harness.client.post(
        f"/admin/keys/{record['id']}/credit", json={"tokens": 25, "note": "top-up"}, headers=admin_headers()
    )
    assert credited.json() == {"id": record["id"], "token_balance": 35}
    taken = await harness.client.post(
        f"/admin/keys/{record['id']}/credit", json={"tokens": -30}, headers=admin_headers()
    )
    assert taken.json()["token_balance"] == 5
    below = await harness.client.post(
        f"/admin/keys/{record['id']}/credit", json={"tokens": -6}, headers=admin_headers()
    )
    assert_error(below, 400, "invalid_request")
    ledger = await ledger_of(harness, key)
    assert [(r["reason"], r["delta"], r["note"]) for r in ledger] == [
        ("adjust", -30, None),
        ("credit", 25, "top-up"),
        ("credit", 10, "initial tokens"),
    ]
    assert sum(r["delta"] for r in ledger) == await balance_of(harness, key) == 5


async def test_admin_refusals(harness: Harness) -> None:
    key, record = await harness.new_key(10)
    assert_error(await harness.client.get("/admin/keys"), 401, "unauthorized")
    assert_error(await harness.client.get("/admin/keys", headers=bearer(key)), 403, "forbidden")
    assert_error(await harness.client.get("/admin/keys/key_nope", headers=admin_headers()), 404, "not_found")
    for body in (
        {},
        {"name": ""},
        {"name": "x", "tokens": -1},
        {"name": "x", "models": ["nope"]},
        {"name": "x", "tokens": "5"},
    ):
        assert_error(
            await harness.client.post("/admin/keys", json=body, headers=admin_headers()),
            400,
            "invalid_request",
        )
    assert_error(
        await harness.client.post(
            f"/admin/keys/{record['id']}/credit", json={"tokens": 1.5}, headers=admin_headers()
        ),
        400,
        "invalid_request",
    )


async def test_admin_api_is_off_without_a_token(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, admin_token=None))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get("/admin/keys", headers=admin_headers())
    assert_error(response, 404, "not_found")


async def test_unknown_route_and_method_are_json(harness: Harness) -> None:
    assert_error(await harness.client.get("/nope"), 404, "not_found")
    assert_error(await harness.client.get("/api/balance/"), 404, "not_found")  # no bodiless redirect
    response = await harness.client.delete("/api/ping")
    assert response.status_code == 405 and response.json()["status"] == "Error"


async def test_admin_labels_and_credits_are_bounded(harness: Harness) -> None:
    for body in (
        {"name": "x" * 201, "tokens": 1},
        {"name": "bad\x00name", "tokens": 1},
    ):
        response = await harness.client.post("/admin/keys", json=body, headers=admin_headers())
        assert response.status_code == 400 and response.json()["code"] == "invalid_request", body
    _, record = await harness.new_key(10)
    credit = f"/admin/keys/{record['id']}/credit"
    long_note = await harness.client.post(
        credit, json={"tokens": 1, "note": "n" * 1001}, headers=admin_headers()
    )
    assert long_note.status_code == 400
    top = 2**53 - 1
    first = await harness.client.post(credit, json={"tokens": top - 10}, headers=admin_headers())
    assert first.status_code == 200 and first.json()["token_balance"] == top
    past = await harness.client.post(credit, json={"tokens": 1}, headers=admin_headers())
    assert past.status_code == 400 and past.json()["balance"] == top  # was a 500 past 2^63
    key_record = await harness.client.get(f"/admin/keys/{record['id']}", headers=admin_headers())
    assert key_record.json()["token_balance"] == top
