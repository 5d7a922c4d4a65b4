"""Liveness and readiness, and the AI-Now ping."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.web.routes.common import services


async def ping(request: Request) -> Response:
    return PlainTextResponse("pong")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    try:
        database = await svc.db.ping()
    except Exception:
        database = False
    providers = svc.registry.states()
    serving = [name for name, state in providers.items() if state in ("closed", "half_open")]
    draining = svc.drain.draining
    ready = database and bool(serving) and not draining
    body = {
        "status": "draining" if draining else "ready" if ready else "not_ready",
        "database": "ok" if database else "unavailable",
        "providers": providers,
        "running_jobs": svc.runner.running,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


routes = [
    Route("/api/ping", ping, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
