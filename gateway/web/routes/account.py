"""The caller's account: balance, ledger, and the model catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.store import ledger
from gateway.web.routes.common import authenticate, paging, services


async def balance(request: Request) -> Response:
    key = await authenticate(request)
    return JSONResponse({"token_balance": await ledger.balance(services(request).db, key.id)})


async def ledger_page(request: Request) -> Response:
    key = await authenticate(request)
    limit, offset = paging(request)
    items, total = await ledger.page(services(request).db, key.id, limit, offset)
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


async def models(request: Request) -> Response:
    key = await authenticate(request)
    svc = services(request)
    listed = [
        svc.catalog.public(model_id, svc.registry.available(model_id))
        for model_id in svc.catalog.models
        if key.models is None or model_id in key.models
    ]
    return JSONResponse({"models": listed})


routes = [
    Route("/api/balance", balance, methods=["GET"]),
    Route("/api/ledger", ledger_page, methods=["GET"]),
    Route("/api/models", models, methods=["GET"]),
]
