"""Simulator fixtures: the app over ASGI on a hand-driven clock, and a real server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from providers.simulator import build_app
from tests.servers import serving

START = 1_790_000_000.0  # a fixed wall time (2026) for the hand-driven clock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeTime:
    """A wall clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sim:
    client: httpx.AsyncClient
    time: FakeTime
    state_dir: Path


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    """The simulator at speed 1 on a fake clock: `sim.time.advance(30)` is thirty upstream seconds."""
    fake = FakeTime()
    app = build_app(1.0, tmp_path, now=fake)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        yield Sim(client, fake, tmp_path)


@pytest.fixture
async def live_url(tmp_path: Path) -> AsyncIterator[str]:
    """A real uvicorn server at speed 500 (Luma's minute takes 0.12 s) on a free loopback port."""
    async with serving(build_app(500.0, tmp_path), lifespan="off") as url:
        yield url
