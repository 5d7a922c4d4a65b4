"""Builds the simulator's Starlette app: each protocol mounted under its prefix, plus the media files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from providers.simulator import comfyui, fal, luma, media, runway, suno
from providers.simulator.store import Store
from providers.simulator.timeline import Clock
from providers.simulator.web import Simulator

if TYPE_CHECKING:
    from providers.simulator.tls import Certificate

PREFIXES = {
    "suno": "/suno",
    "luma": "/luma/dream-machine/v1",
    "pika": "/fal",
    "run": "/runway/v1",
    "local": "/comfyui",
}
"""Each provider's base URL in demo mode is the simulator's URL plus its prefix."""


class OpenStore:
    """Reads the state file before the first request is answered (the app may run without lifespan)."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            await self.store.open()
        await self.app(scope, receive, send)


def build_app(
    speed: float = 1.0, state_dir: Path | None = None, *, now: Callable[[], float] = time.time
) -> Starlette:
    """The simulator; `speed` divides every upstream's timings, `state_dir` keeps state across restarts."""
    sim = Simulator(Clock(speed, now), Store(state_dir))

    async def index(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"speed": speed, "providers": {name: base + p for name, p in PREFIXES.items()}})

    return Starlette(
        routes=[
            Route("/", index),
            Mount(PREFIXES["suno"], routes=suno.routes(sim)),
            Mount(PREFIXES["luma"], routes=luma.routes(sim)),
            Mount(PREFIXES["pika"], routes=fal.routes(sim)),
            Mount(PREFIXES["run"], routes=runway.routes(sim)),
            Mount(PREFIXES["local"], routes=comfyui.routes(sim)),
            Mount("/media", routes=media.routes()),
        ],
        middleware=[Middleware(OpenStore, store=sim.store)],
    )


def server_config(
    host: str,
    port: int,
    speed: float = 1.0,
    state_dir: Path | None = None,
    certificate: Certificate | None = None,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn's configuration for the simulator: plain HTTP, or HTTPS with `certificate`."""
    if certificate is not None:
        options |= {"ssl_certfile": str(certificate.cert_file), "ssl_keyfile": str(certificate.key_file)}
    return uvicorn.Config(build_app(speed, state_dir), host=host, port=port, lifespan="off", **options)


async def serve(
    host: str,
    port: int,
    speed: float = 1.0,
    state_dir: Path | None = None,
    certificate: Certificate | None = None,
) -> None:
    """Runs the simulator on host:port until cancelled (or interrupted by a signal); HTTPS with a certificate."""
    config = server_config(host, port, speed, state_dir, certificate)
    server = uvicorn.Server(config)
    try:
        await server.serve()
    except anyio.get_cancelled_exc_class():
        server.should_exit = True
        if server.started:
            with anyio.CancelScope(shield=True):
                await server.shutdown()
        raise
