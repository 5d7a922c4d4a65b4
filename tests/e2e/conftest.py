"""End-to-end fixtures: the simulator and the gateway, each a real uvicorn server on loopback."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.cli import demo_settings
from gateway.settings import Settings
from providers.simulator import build_app
from tests.conftest import ADMIN
from tests.servers import free_port, serving

SPEED = 40.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class Live:
    url: str
    simulator_url: str
    settings: Settings
    client: httpx.AsyncClient

    async def new_key(self, tokens: int = 1000, **fields: object) -> str:
        response = await self.client.post(
            "/admin/keys",
            json={"name": "e2e", "tokens": tokens, **fields},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("GATEWAY_SIMULATOR__SPEED", str(SPEED))
    monkeypatch.setenv("GATEWAY_HEARTBEAT_SECONDS", "1")
    for name in ("SUNO", "LUMA", "PIKA", "RUN", "LOCAL"):
        monkeypatch.setenv(f"GATEWAY_PROVIDERS__{name}__POLL_INTERVAL", "0.05")
    port = free_port()
    async with serving(build_app(SPEED, tmp_path / "simulator"), lifespan="off") as simulator_url:
        settings = demo_settings("127.0.0.1", port, simulator_url)
        async with serving(create_app(settings), port=port) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield Live(url, simulator_url, settings, client)


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    return CHROMIUM
