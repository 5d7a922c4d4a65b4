"""A live gateway on the simulator for the fuzzers: real uvicorn servers in a thread of their own,
so schemathesis (synchronous, over requests) can talk to them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import start_blocking_portal

from gateway.app import create_app
from gateway.cli import demo_settings
from providers.simulator import build_app
from tests.conftest import ADMIN
from tests.servers import free_port, serving

SPEED = 400.0
FUNDS = 10**12


@dataclass(frozen=True)
class LiveGateway:
    url: str
    key: str
    key_id: str


def funded_key(url: str) -> tuple[str, str]:
    response = httpx.post(
        url + "/admin/keys",
        json={
            "name": "fuzz",
            "tokens": FUNDS,
            "rate_limit_per_minute": 10**9,
            "max_concurrent_jobs": 10**6,
        },
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key"], body["id"]


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    with start_blocking_portal() as portal:
        simulator = build_app(SPEED, data / "simulator")
        with portal.wrap_async_context_manager(serving(simulator, lifespan="off")) as simulator_url:
            settings = demo_settings("127.0.0.1", port, simulator_url)
            providers = {
                name: config.model_copy(update={"poll_interval": 0.05})
                for name, config in settings.providers.items()
            }
            settings = settings.model_copy(
                update={
                    "data_dir": data / "gateway",
                    "admin_token": ADMIN,
                    "heartbeat_seconds": 1.0,
                    "providers": providers,
                    "default_rate_limit_per_minute": 10**9,
                }
            )
            with portal.wrap_async_context_manager(serving(create_app(settings), port=port)) as url:
                key, key_id = funded_key(url)
                yield LiveGateway(url, key, key_id)
