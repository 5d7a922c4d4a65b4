"""Replicas on one database sign alike without hand-copied secrets: unset ones are generated once into the
database, set ones must agree, and a replica set otherwise stops at start-up with one line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.cli import preflight
from gateway.jobs.services import Services
from gateway.settings import Settings
from gateway.web.auth import check_stream_token, stream_token
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


def replica(tmp_path: Path, name: str, postgres_url: str, **secrets: str) -> Settings:
    return make_settings(tmp_path / name, database_url=postgres_url, instance_id=name, **secrets)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Services]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        yield services


async def test_replicas_with_no_secrets_set_sign_alike(tmp_path: Path, postgres_url: str) -> None:
    first, second = replica(tmp_path, "a", postgres_url), replica(tmp_path, "b", postgres_url)
    await preflight.reach(first)
    await preflight.reach(second)
    async with running(first) as a, running(second) as b:
        url = a.results.signed_url("job_x", "result-1.wav", 4_000_000_000)
        query = dict(part.split("=") for part in url.split("?")[1].split("&"))
        assert (
            b.results.verify("job_x", "result-1.wav", query["expires"], query["signature"]) == 4_000_000_000
        )
        assert check_stream_token(b.stream_secret, "job_x", stream_token(a.stream_secret, "job_x", 60))
        assert a.stream_secret == b.stream_secret and len(a.stream_secret) == 64
    # nothing was written into either data dir: the database holds them
    assert not (tmp_path / "a" / "secrets").exists() and not (tmp_path / "b" / "secrets").exists()


async def test_set_secrets_must_agree_and_one_set_otherwise_stops_with_one_line(
    tmp_path: Path, postgres_url: str
) -> None:
    same: dict[str, Any] = {"url_signing_key": "k" * 40, "webhook_secret": "w" * 40}
    await preflight.reach(replica(tmp_path, "a", postgres_url, **same))
    await preflight.reach(replica(tmp_path, "b", postgres_url, **same))  # the same values: welcome
    with pytest.raises(preflight.ConfigError, match="GATEWAY_URL_SIGNING_KEY is set here to a value"):
        await preflight.reach(replica(tmp_path, "c", postgres_url, **{**same, "url_signing_key": "x" * 40}))
    with pytest.raises(
        preflight.ConfigError, match="GATEWAY_WEBHOOK_SECRET is set on the deployment's other"
    ):
        await preflight.reach(replica(tmp_path, "d", postgres_url, url_signing_key="k" * 40))
    async with running(replica(tmp_path, "b", postgres_url, **same)) as b:
        assert b.results.secret == b"k" * 40  # the set value, as one process uses it
        assert len(b.stream_secret) == 64  # the one left unset: generated into the database


async def test_a_replica_set_while_the_others_generated_is_told_to_unset(
    tmp_path: Path, postgres_url: str
) -> None:
    await preflight.reach(replica(tmp_path, "a", postgres_url))
    with pytest.raises(preflight.ConfigError, match=r"GATEWAY_STREAM_TOKEN_SECRET .* unset it here"):
        await preflight.reach(replica(tmp_path, "b", postgres_url, stream_token_secret="s" * 40))
