"""Upstream accounts: configured from TOML or the environment, each job tied to its account's
credential, accounts out of rotation on a refused credential and back after it recovers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.settings import Settings
from tests import fakes
from tests.conftest import admin_headers, bearer
from tests.gateway.test_resilience import client_for

pytestmark = pytest.mark.anyio

TWO_ACCOUNTS = [
    {"name": "a", "credential_env": "SCRIPTED_KEY_A"},
    {"name": "b", "credential_env": "SCRIPTED_KEY_B"},
]


@pytest.fixture(autouse=True)
def account_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTED_KEY_A", "key-a")
    monkeypatch.setenv("SCRIPTED_KEY_B", "key-b")


def test_accounts_from_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[providers.luma]\n"
        'adapter = "providers.luma:LumaProvider"\n'
        'base_url = "https://api.lumalabs.ai/dream-machine/v1"\n'
        "max_in_flight = 4\n"
        'accounts = [{name = "a", credential_env = "LUMA_KEY_A", weight = 2},'
        ' {name = "b", credential_env = "LUMA_KEY_B", max_in_flight = 1, base_url = "http://b.example"}]\n'
    )
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    monkeypatch.setenv("LUMA_KEY_B", "secret-b")
    settings = Settings()
    accounts = settings.providers["luma"].account_list()
    assert [(a.name, a.credential_env, a.max_in_flight, a.weight) for a in accounts] == [
        ("a", "LUMA_KEY_A", None, 2.0),
        ("b", "LUMA_KEY_B", 1, 1.0),
    ]
    assert settings.provider_configured("luma")  # b has its credential; a does not and is left out
    assert not settings.account_configured("luma", accounts[0])
    b = settings.provider_settings("luma", account=accounts[1])
    assert (b.api_key, b.base_url) == ("secret-b", "http://b.example")


def test_accounts_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GATEWAY_PROVIDERS__LUMA__ACCOUNTS",
        '[{"name":"a","credential_env":"LUMA_KEY_A"},{"name":"b","credential_env":"LUMA_KEY_B","max_in_flight":1}]',
    )
    settings = Settings()  # the shipped config.toml, its luma provider given two accounts
    luma = settings.providers["luma"]
    assert luma.adapter == "providers.luma:LumaProvider"  # the rest of the TOML table stays
    assert [(a.name, a.credential_env, a.max_in_flight) for a in luma.account_list()] == [
        ("a", "LUMA_KEY_A", None),
        ("b", "LUMA_KEY_B", 1),
    ]


def test_with_accounts_a_provider_still_needs_its_other_requirements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNO_KEY_A", "k")
    monkeypatch.setenv("GATEWAY_PROVIDERS__SUNO__ACCOUNTS", '[{"name":"a","credential_env":"SUNO_KEY_A"}]')
    assert not Settings().provider_configured("suno")  # SUNO_API_URL says where suno-api runs
    monkeypatch.setenv("SUNO_API_URL", "http://127.0.0.1:3000")
    assert Settings().provider_configured("suno")
    monkeypatch.delenv("SUNO_API_URL")
    monkeypatch.setenv(
        "GATEWAY_PROVIDERS__SUNO__ACCOUNTS",
        '[{"name":"a","credential_env":"SUNO_KEY_A","base_url":"http://127.0.0.1:3001"}]',
    )
    assert Settings().provider_configured("suno")  # every account says where it runs


def test_a_provider_without_accounts_is_one_account_from_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LUMAAI_API_KEY", "the-key")
    settings = Settings()
    (account,) = settings.providers["luma"].account_list()
    assert (account.name, account.credential_env) == ("default", "LUMAAI_API_KEY")
    assert settings.provider_settings("luma").api_key == "the-key"


@asynccontextmanager
async def gateway(
    tmp_path: Path, database_url: str | None = None, **scripted: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The app on the scripted provider (these settings for it) and a key with 1000 tokens."""
    async with client_for(tmp_path, scripted=scripted, database_url=database_url) as (client, key, _app):
        yield client, key


async def submit(client: httpx.AsyncClient, key: str, prompt: str, model: str = "echo") -> str:
    response = await client.post(
        "/api/generations", json={"model": model, "prompt": prompt}, headers=bearer(key)
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def job(client: httpx.AsyncClient, key: str, job_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/api/generations/{job_id}", headers=bearer(key))).json())


async def wait_for(client: httpx.AsyncClient, key: str, job_id: str, *statuses: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while (found := await job(client, key, job_id))["status"] not in statuses:
            await anyio.sleep(0.02)
    return found


async def accounts(client: httpx.AsyncClient, provider: str = "scripted") -> dict[str, dict[str, Any]]:
    response = await client.get("/admin/providers", headers=admin_headers())
    assert response.status_code == 200, response.text
    (found,) = [p for p in response.json()["providers"] if p["name"] == provider]
    return {a["name"]: a for a in found["accounts"]}


def credentials_for(subject: str) -> list[tuple[str, str | None]]:
    return [(what, credential) for what, credential, seen in fakes.CALLS if subject in seen]


async def test_every_call_for_a_job_uses_the_account_that_took_it(
    tmp_path: Path, database_url: str | None
) -> None:
    capped = [{**a, "max_in_flight": 1} for a in TWO_ACCOUNTS]
    async with gateway(tmp_path, database_url, accounts=capped) as (client, key):
        first = await submit(client, key, "gate:first")
        await wait_for(client, key, first, "processing")
        second = await submit(client, key, "gate:second")  # a is at its cap: b takes it
        await wait_for(client, key, second, "processing")
        load = await accounts(client)
        assert (load["a"]["in_flight"], load["b"]["in_flight"]) == (1, 1)
        cancelled = await client.post(f"/api/generations/{second}/cancel", headers=bearer(key))
        assert cancelled.json()["status"] == "canceled"
        fakes.release("first")
        await wait_for(client, key, first, "completed")
    assert credentials_for(first) == [("submit", "key-a")]
    assert credentials_for(second) == [("submit", "key-b"), ("cancel", "key-b")]


async def test_an_account_whose_credential_is_refused_is_disabled_and_jobs_complete_on_the_other(
    tmp_path: Path, database_url: str | None
) -> None:
    fakes.REFUSED.add("key-a")
    async with gateway(tmp_path, database_url, accounts=TWO_ACCOUNTS) as (client, key):
        jobs = [await submit(client, key, f"job {n}") for n in range(4)]
        for job_id in jobs:
            done = await wait_for(client, key, job_id, "completed", "failed")
            assert done["status"] == "completed" and done["refunded"] is False
        listed = await accounts(client)
        assert listed["a"]["state"] == "disabled"
        assert listed["a"]["reason"] == "credential refused: upstream answered 401: invalid API key"
        assert listed["a"]["next_probe_at"] is not None
        assert listed["b"]["state"] == "active" and listed["b"]["reason"] is None
        reasons = [
            r["reason"] for r in (await client.get("/api/ledger", headers=bearer(key))).json()["items"]
        ]
        assert reasons.count("debit") == 4 and "refund" not in reasons
        # jobs that took a slot on a before its first refusal came back were refused too, and re-queued
        assert {what for what, credential, _ in fakes.CALLS if credential == "key-a"} == {"submit"}
        for job_id in jobs:
            assert credentials_for(job_id)[-1] == ("submit", "key-b")
        later = await submit(client, key, "after a is out")
        assert (await wait_for(client, key, later, "completed", "failed"))["status"] == "completed"
    assert credentials_for(later) == [("submit", "key-b")]  # a is out of rotation: not even tried


async def test_a_disabled_account_is_tried_again_and_back_in_rotation_once_it_answers(tmp_path: Path) -> None:
    fakes.REFUSED.add("key-a")
    async with gateway(tmp_path, accounts=TWO_ACCOUNTS, account_probe_seconds=0.2) as (client, key):
        await wait_for(client, key, await submit(client, key, "first"), "completed")
        assert (await accounts(client))["a"]["state"] in ("disabled", "probing")
        fakes.REFUSED.clear()  # the operator topped the account up
        with anyio.fail_after(10):
            while (await accounts(client))["a"]["state"] != "probing":
                await anyio.sleep(0.05)
        trial = await submit(client, key, "trial")
        assert (await wait_for(client, key, trial, "completed", "failed"))["status"] == "completed"
        listed = await accounts(client)
        assert listed["a"]["state"] == "active" and listed["a"]["reason"] is None
    assert credentials_for(trial) == [("submit", "key-a")]


async def test_with_every_account_refused_new_jobs_are_refused_with_503(tmp_path: Path) -> None:
    fakes.REFUSED.update({"key-a", "key-b"})
    async with gateway(tmp_path, accounts=TWO_ACCOUNTS) as (client, key):
        failed = await wait_for(client, key, await submit(client, key, "x"), "completed", "failed")
        assert failed["error_code"] == "provider_unavailable" and failed["refunded"] is True
        refused = await client.post(
            "/api/generations", json={"model": "echo", "prompt": "y"}, headers=bearer(key)
        )
        assert refused.status_code == 503 and refused.json()["code"] == "provider_unavailable"
        assert int(refused.headers["retry-after"]) >= 1
        assert (await client.get("/api/balance", headers=bearer(key))).json()["token_balance"] == 1000
        assert (await client.get("/readyz")).json()["providers"]["scripted"] == "open"


async def test_admin_providers_needs_the_admin_token(tmp_path: Path) -> None:
    async with gateway(tmp_path) as (client, key):
        refused = await client.get("/admin/providers", headers=bearer(key))
        assert refused.status_code in (401, 403)
        listed = (await client.get("/admin/providers", headers=admin_headers())).json()["providers"]
        names = {p["name"]: p for p in listed}
        assert names["scripted"]["accounts"][0]["name"] == "default"
        luma = names["luma"]
        assert (luma["state"], luma["configured"], luma["accounts"]) == ("unconfigured", False, [])
        assert json.dumps(listed)  # plain JSON all the way down
