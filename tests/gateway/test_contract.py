"""gateway/contract's models are the answers' shapes, and the configured limits are the ones validated
and published in /openapi.json."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.contract import responses
from gateway.contract.errors import ErrorBody
from gateway.contract.requests import MAX_INTEGER, MAX_NAME_CHARS
from tests.conftest import Harness, admin_headers, bearer, make_settings
from tests.gateway.shapes import check, check_items
from tests.sse import parse

pytestmark = pytest.mark.anyio


async def test_every_answer_is_its_model(harness: Harness) -> None:
    client = harness.client
    key, record = await harness.new_key(tokens=1000)
    check(responses.Key, record)
    auth = bearer(key)
    quote = await client.post("/api/quote", json={"model": "echo", "prompt": "x"}, headers=auth)
    check(responses.Quote, quote.json())
    stream = await client.post("/api/generate", json={"model": "echo", "prompt": "x"}, headers=auth)
    assert [e["status"] for _, e in parse(stream.text)][-1] == "Completed"
    created = await client.post("/api/generations", json={"model": "echo", "prompt": "hold"}, headers=auth)
    assert created.status_code == 202
    check_items(responses.JobPage, (await client.get("/api/generations", headers=auth)).json(), responses.Job)
    cancelled = await client.post(f"/api/generations/{created.json()['id']}/cancel", headers=auth)
    check(responses.Job, cancelled.json())
    check(responses.Balance, (await client.get("/api/balance", headers=auth)).json())
    ledger = (await client.get("/api/ledger", headers=auth)).json()
    check_items(responses.LedgerPage, ledger, responses.LedgerEntry)
    models = (await client.get("/api/models", headers=auth)).json()
    check(responses.Models, models)
    for model in models["models"]:
        check(responses.Model, model)

    admin = admin_headers()
    key_id = record["id"]
    check_items(responses.Keys, (await client.get("/admin/keys", headers=admin)).json(), responses.Key)
    patched = await client.patch(f"/admin/keys/{key_id}", json={"name": "renamed"}, headers=admin)
    check(responses.Key, patched.json())
    credited = await client.post(f"/admin/keys/{key_id}/credit", json={"tokens": 5}, headers=admin)
    check(responses.KeyBalance, credited.json())
    usage = (await client.get("/admin/usage?group_by=day,model,key,provider", headers=admin)).json()
    check(responses.Usage, usage)
    for group in [*usage["groups"], usage["totals"]]:
        check(responses.UsageGroup, group)
    jobs = (await client.get("/admin/jobs", headers=admin)).json()
    check_items(responses.AdminJobPage, jobs, responses.AdminJob)
    providers = (await client.get("/admin/providers", headers=admin)).json()
    check(responses.Providers, providers)
    for provider in providers["providers"]:
        check(responses.ProviderHealth, provider)
        for account in provider["accounts"]:
            check(responses.Account, account)
    check(responses.Key, (await client.delete(f"/admin/keys/{key_id}", headers=admin)).json())

    refusals = [
        await client.post(
            "/api/quote", json={"model": "echo", "prompt": "x", "options": {"x": 1}}, headers=auth
        ),
        await client.post("/admin/keys", json={"tokens": 1}, headers=admin),
        await client.get("/api/generations/nope", headers=bearer(key)),
        await client.get("/nowhere"),
    ]
    for refused in refusals:
        assert refused.status_code >= 400
        check(ErrorBody, refused.json())


async def test_the_configured_limits_are_validated_and_published(tmp_path: Path) -> None:
    echo = {
        "options": {
            "duration": {"type": "integer", "min": 2, "max": 10, "default": 5},
            "mood": {"type": "string", "choices": ["calm", "wild"]},
        },
        "styles": [{"value": "a", "label": "Alpha"}],
    }
    app = create_app(make_settings(tmp_path, max_prompt_chars=50, echo=echo))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            spec = (await client.get("/openapi.json")).json()
            validate(spec)
            schemas = spec["components"]["schemas"]
            request = schemas["GenerateRequest_echo"]
            assert request["properties"]["prompt"]["maxLength"] == 50
            assert request["properties"]["model"]["const"] == "echo"
            assert request["properties"]["style"]["anyOf"][0]["enum"] == ["a", ""]
            options = schemas["Options_echo"]
            assert options["additionalProperties"] is False
            duration = options["properties"]["duration"]
            assert duration["anyOf"][0] == {"type": "integer", "minimum": 2, "maximum": 10}
            assert duration["default"] == 5
            assert options["properties"]["mood"]["anyOf"][0] == {
                "type": "string",
                "enum": ["calm", "wild"],
                "maxLength": 2000,
            }
            assert {"$ref": "#/components/schemas/GenerateRequest_echo"} in schemas["GenerateRequest"][
                "oneOf"
            ]
            key_request = schemas["KeyRequest"]
            assert key_request["required"] == ["name"]
            assert key_request["properties"]["name"]["maxLength"] == MAX_NAME_CHARS
            assert key_request["properties"]["tokens"]["maximum"] == MAX_INTEGER
            assert key_request["properties"]["rate_limit_per_minute"]["minimum"] == 1
            assert key_request["properties"]["max_concurrent_jobs"]["minimum"] == 1

            key = (
                await client.post("/admin/keys", json={"name": "k", "tokens": 100}, headers=admin_headers())
            ).json()["key"]
            refused = await client.post(
                "/api/quote", json={"model": "echo", "prompt": "x" * 51}, headers=bearer(key)
            )
            assert refused.json()["message"] == "`prompt` is 51 characters; the limit is 50."
            refused = await client.post(
                "/api/quote",
                json={"model": "echo", "prompt": "x", "options": {"duration": 11}},
                headers=bearer(key),
            )
            assert refused.json()["message"] == "Option 'duration' must be at most 10."
            quoted = await client.post(
                "/api/quote", json={"model": "echo", "prompt": "x" * 50, "style": "a"}, headers=bearer(key)
            )
            assert quoted.status_code == 200, quoted.text
