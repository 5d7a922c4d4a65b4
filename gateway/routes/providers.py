"""The operators' view of the upstreams: GET /admin/providers, every provider and account with its health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import auth
from gateway.accounts import Account
from gateway.registry import Upstream
from gateway.routes.common import services
from gateway.store import shared
from gateway.store.db import iso
from gateway.store.shared import Load


def _moment(seconds: float | None) -> str | None:
    return iso(datetime.fromtimestamp(seconds, UTC)) if seconds is not None else None


def _account(account: Account, load: Load, first: bool) -> dict[str, Any]:
    in_flight = load.in_flight.get(account.name, 0)
    if first:  # jobs from before accounts existed hold slots without one: they run on the first
        in_flight += load.in_flight.get(None, 0)
    return {
        "name": account.name,
        "state": account.state(),
        "reason": account.health.reason,
        "disabled_at": _moment(account.health.disabled_at),
        "next_probe_at": _moment(account.health.next_probe_at),
        "in_flight": in_flight,
        "cap": account.limit,
        "weight": account.weight,
        **account.calls.summary(),
    }


async def _provider(upstream: Upstream) -> dict[str, Any]:
    load = await shared.provider_load(upstream.gate.db, upstream.name)
    accounts = [_account(a, load, i == 0) for i, a in enumerate(upstream.accounts.values())]
    return {
        "name": upstream.name,
        "state": upstream.state,
        "configured": True,
        "in_flight": sum(a["in_flight"] for a in accounts),
        "cap": sum(a["cap"] for a in accounts),
        "queued": load.queued,
        "accounts": accounts,
    }


async def list_providers(request: Request) -> Response:
    auth.require_admin(request)
    svc = services(request)
    providers = []
    for name in svc.settings.providers:
        upstream = svc.registry.upstream(name)
        if upstream is None:
            providers.append({"name": name, "state": "unconfigured", "configured": False, "accounts": []})
        else:
            providers.append(await _provider(upstream))
    return JSONResponse({"providers": providers})


routes = [Route("/admin/providers", list_providers, methods=["GET"])]
