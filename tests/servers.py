"""Real uvicorn servers on free loopback ports, run inside the test's event loop."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass

    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


@contextlib.asynccontextmanager
async def serving(app: Any, *, lifespan: str = "on", port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    async with running(config):
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def running(config: uvicorn.Config) -> AsyncIterator[None]:
    """Run a server of `config` (its own host and port) until the block ends."""
    server = _Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield
        finally:
            server.should_exit = True
