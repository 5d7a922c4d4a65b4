"""The operators' view of the upstreams: GET /admin/providers, every provider (configured or not, its
state, slots in use, recent errors and latency) and each of its accounts with its health."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.jobs.services import Services
from gateway.store import shared
from gateway.store.db import iso
from gateway.store.shared import Load
from gateway.upstreams.accounts import Account
from gateway.upstreams.registry import Upstream
from gateway.web import auth
from gateway.web.routes.common import services


def _moment(seconds: float | None) -> str | None:
    return iso(datetime.fromtimestamp(seconds, UTC)) if seconds is not None else None


def _account_reason(account: Account) -> str | None:
    """Why the account takes no job (or only a trial): the provider's refusal, else its circuit."""
    if account.health.reason is not None:
        return account.health.reason
    state = account.circuit.state
    if state == "closed":
        return None
    return f"{account.circuit.consecutive_failures} failures in a row" + (
        "; the next job is a trial" if state == "half_open" else ""
    )


def _account(account: Account, load: Load, first: bool) -> dict[str, Any]:
    in_flight = load.in_flight.get(account.name, 0)
    if first:  # jobs from before accounts existed hold slots without one: they run on the first
        in_flight += load.in_flight.get(None, 0)
    return {
        "name": account.name,
        "state": account.state(),
        "reason": _account_reason(account),
        "disabled_at": _moment(account.health.disabled_at),
        "next_probe_at": _moment(account.health.next_probe_at),
        "in_flight": in_flight,
        "cap": account.limit,
        "weight": account.weight,
        **account.calls.summary(),
    }


def _provider_reason(upstream: Upstream) -> str | None:
    """None while the provider takes jobs; else why each of its accounts does not."""
    if upstream.state == "closed":
        return None
    reasons = [
        f"{name}: {reason}" if len(upstream.accounts) > 1 else reason
        for name, account in upstream.accounts.items()
        if (reason := _account_reason(account)) is not None
    ]
    return "; ".join(reasons) or None


async def _configured(svc: Services, upstream: Upstream, models: list[str]) -> dict[str, Any]:
    load = await shared.provider_load(upstream.gate.db, upstream.name)
    accounts = [_account(a, load, i == 0) for i, a in enumerate(upstream.accounts.values())]
    state = upstream.state
    return {
        "name": upstream.name,
        "configured": True,
        "state": state,
        "reason": _provider_reason(upstream),
        "retry_after": upstream.retry_after() if state == "open" else None,
        "in_flight": sum(a["in_flight"] for a in accounts),
        "cap": sum(a["cap"] for a in accounts),
        "queued": load.queued,
        "models": models,
        **asdict(svc.metrics.recent.recent(upstream.name)),
        "accounts": accounts,
    }


async def _provider(svc: Services, name: str) -> dict[str, Any]:
    config = svc.settings.providers[name]
    models = sorted(m for m, model in svc.settings.models.items() if model.provider == name)
    upstream = svc.registry.upstream(name)
    if upstream is not None:
        return await _configured(svc, upstream, models)
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
        "accounts": [],
    }


async def list_providers(request: Request) -> Response:
    auth.require_admin(request)
    svc = services(request)
    return JSONResponse({"providers": [await _provider(svc, name) for name in svc.settings.providers]})


routes = [Route("/admin/providers", list_providers, methods=["GET"])]
