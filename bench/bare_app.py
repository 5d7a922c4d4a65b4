"""The baseline: a bare sse-starlette app streaming the same events, with no auth, no store, no upstream."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _event(seq: int, data: dict[str, object]) -> bytes:
    return f"id: {seq}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def generate(request: Request) -> Response:
    """Like POST /api/generate: the first event at once, then `n` events `interval` seconds apart."""
    body = await request.json()
    n = int(request.query_params.get("n", "0"))
    interval = float(request.query_params.get("interval", "1"))
    job_id = "job_" + secrets.token_urlsafe(18)

    async def events() -> AsyncIterator[bytes]:
        yield _event(
            1, {"status": "Processing started", "job_id": job_id, "model": body.get("model"), "cost": 10}
        )
        for seq in range(2, n + 2):
            await anyio.sleep(interval)
            yield _event(seq, {"status": "Processing", "job_id": job_id, "progress": min(99, seq)})
        yield _event(n + 2, {"status": "Completed", "job_id": job_id, "url": "http://x/y.wav", "urls": []})

    return EventSourceResponse(events(), headers={"Cache-Control": "no-cache"}, ping=15, sep="\n")


async def create(request: Request) -> Response:
    body = await request.json()
    return JSONResponse(
        {"id": "job_" + secrets.token_urlsafe(18), "model": body.get("model"), "status": "queued"},
        status_code=202,
    )


app = Starlette(
    routes=[Route("/generate", generate, methods=["POST"]), Route("/create", create, methods=["POST"])]
)
