"""Shared fixtures: settings on a temporary data dir, the app over ASGI, keys with tokens."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings

ADMIN = "admin-test-token"

# The files whose tests take longest in a row run first: xdist hands out whole files in collection order
# (pyproject.toml's addopts), and one of these started near the end would keep the run waiting on it.
LONGEST_FIRST = ("tests/e2e/test_replicas.py", "tests/e2e/test_console.py", "tests/e2e/test_chaos.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONGEST_FIRST)  # stable: else as found


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject.toml's addopts): six workers for the whole suite, as `pytest` alone runs it;
    none for the paths a run names, where starting six workers costs more than they save."""
    return 6 if config.args_source == pytest.Config.ArgsSource.TESTPATHS else 0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's GATEWAY_* variables or provider credentials."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_") or name in (
            "SUNO_API_URL",
            "SUNO_API_KEY",
            "LUMAAI_API_KEY",
            "FAL_KEY",
            "RUNWAYML_API_SECRET",
            "COMFYUI_URL",
        ):
            monkeypatch.delenv(name)


def scripted_provider(**overrides: Any) -> dict[str, Any]:
    return {
        "adapter": "tests.fakes:ScriptedProvider",
        "base_url": "http://scripted.invalid",
        "passthrough": True,
        "poll_interval": 0,
        "circuit_failures": 3,
        "circuit_cooldown_seconds": 60,
        **overrides,
    }


def make_settings(
    data_dir: Path,
    *,
    scripted: dict[str, Any] | None = None,
    echo: dict[str, Any] | None = None,
    **overrides: Any,
) -> Settings:
    """The shipped config.toml plus two scripted providers: `echo` and `echo-backup` (passthrough results)."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": ADMIN,
        "public_url": "http://testserver",
        "heartbeat_seconds": 1,
        "providers": {"scripted": scripted_provider(**(scripted or {})), "backup": scripted_provider()},
        "models": {
            "echo": {"provider": "scripted", "kind": "audio", "cost": 10, **(echo or {})},
            "echo-backup": {"provider": "backup", "kind": "audio", "cost": 3},
        },
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Harness:
    app: Starlette
    client: httpx.AsyncClient
    settings: Settings

    async def new_key(self, tokens: int = 100, **fields: Any) -> tuple[str, dict[str, Any]]:
        response = await self.client.post(
            "/admin/keys", json={"name": "test", "tokens": tokens, **fields}, headers=admin_headers()
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["key"], body


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, settings)


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis the Redis engines are tested against: skipped when absent, but a failure in CI."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as error:
        engine_missing(f"Redis at {REDIS_URL}", error)
    return REDIS_URL


@pytest.fixture(autouse=True)
def fresh_scripted_provider() -> None:
    from tests import fakes

    fakes.RELEASE.clear()
    fakes.REFUSED.clear()
    fakes.CALLS.clear()
    fakes.ENTERED.clear()


# --- the real engines (PostgreSQL on 127.0.0.1:5432 with trust auth) ------------------------------

POSTGRES_ADMIN_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def engine_missing(what: str, error: BaseException) -> None:
    """Where CI=true the engine must be there: fail loudly; elsewhere skip with the reason."""
    reason = f"{what} is not reachable ({type(error).__name__}: {error})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI runs these tests against the real engine", pytrace=False)
    pytest.skip(reason)


def _admin_sql(*statements: str) -> None:
    """Run admin statements on PostgreSQL from a thread of their own (fixtures may sit inside a loop)."""
    import asyncio
    import concurrent.futures

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database of its own for this test (`gw_test_<random>`), dropped after it."""
    import secrets

    import asyncpg

    name = f"gw_test_{secrets.token_hex(6)}"
    try:
        _admin_sql(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        engine_missing("PostgreSQL at " + POSTGRES_ADMIN_URL, exc)
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The store an app runs on: the SQLite file in its data dir, or a PostgreSQL database of its own."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))
