"""The operators' view of each provider: configured or not, circuit, slots in use, recent errors and latency."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import auth
from gateway.routes.common import services


async def _provider(request: Request, name: str) -> dict[str, Any]:
    svc = services(request)
    config = svc.settings.providers[name]
    upstream = svc.registry.upstream(name)
    models = sorted(m for m, model in svc.settings.models.items() if model.provider == name)
    if upstream is None:
        missing = [var for var in config.requires if not os.environ.get(var)]
        return {
            "name": name,
            "configured": False,
            "state": "unconfigured",
            "reason": f"needs {', '.join(missing)}" if missing else "not configured",
            "retry_after": None,
            "in_flight": 0,
            "cap": config.max_in_flight,
            "queued": 0,
            "models": models,
            **asdict(svc.metrics.recent.recent(name)),
        }
    circuit = upstream.circuit
    state = circuit.state
    in_flight, queued = await upstream.gate.occupancy()
    reason = None
    if state != "closed":
        reason = f"{circuit.consecutive_failures} failures in a row" + (
            "; the next job is a trial" if state == "half_open" else ""
        )
    return {
        "name": name,
        "configured": True,
        "state": state,
        "reason": reason,
        "retry_after": circuit.retry_after() if state == "open" else None,
        "in_flight": in_flight,
        "cap": upstream.gate.limit,
        "queued": queued,
        "models": models,
        **asdict(svc.metrics.recent.recent(name)),
    }


async def list_providers(request: Request) -> Response:
    auth.require_admin(request)
    names = services(request).settings.providers
    return JSONResponse({"providers": [await _provider(request, name) for name in names]})


routes = [Route("/admin/providers", list_providers, methods=["GET"])]
