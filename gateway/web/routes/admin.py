"""The operators' key API: create, list, read, update, revoke, credit. Takes the admin token only."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract.errors import NotFound
from gateway.contract.refusals import refuse_body
from gateway.contract.requests import Credit
from gateway.store import keys, ledger
from gateway.store.keys import ApiKey
from gateway.web import auth
from gateway.web.routes.common import read_json, services

Body = TypeVar("Body", bound=BaseModel)


async def _body(request: Request, model: type[Body], *, credit: bool = False) -> Body:
    """The JSON body as `model` (the catalog's, for this configuration's model ids)."""
    body = await read_json(request)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise refuse_body(exc, body, model, credit=credit) from None


async def _key(request: Request) -> ApiKey:
    key = await keys.get(services(request).db, request.path_params["key_id"])
    if key is None:
        raise NotFound("No such API key.")
    return key


async def create_key(request: Request) -> Response:
    auth.require_admin(request)
    body = await _body(request, services(request).catalog.key_request)
    plain, record = await keys.issue(
        services(request).db,
        name=body.name,
        tokens=body.tokens or 0,
        models=body.models,
        rate_limit_per_minute=body.rate_limit_per_minute,
        max_concurrent_jobs=body.max_concurrent_jobs,
    )
    return JSONResponse({"key": plain, **record.public()}, status_code=201)


async def list_keys(request: Request) -> Response:
    auth.require_admin(request)
    return JSONResponse({"items": [k.public() for k in await keys.list_all(services(request).db)]})


async def get_key(request: Request) -> Response:
    auth.require_admin(request)
    return JSONResponse((await _key(request)).public())


async def update_key(request: Request) -> Response:
    auth.require_admin(request)
    await _key(request)
    body = await _body(request, services(request).catalog.key_update)
    changes: dict[str, Any] = body.model_dump(include=body.model_fields_set)
    updated = await keys.update(services(request).db, request.path_params["key_id"], changes)
    assert updated is not None
    await services(request).keys.changed(updated.id)
    return JSONResponse(updated.public())


async def revoke_key(request: Request) -> Response:
    auth.require_admin(request)
    await _key(request)
    revoked = await keys.revoke(services(request).db, request.path_params["key_id"])
    assert revoked is not None
    await services(request).keys.changed(revoked.id)
    return JSONResponse(revoked.public())


async def credit_key(request: Request) -> Response:
    auth.require_admin(request)
    key = await _key(request)
    body = await _body(request, Credit, credit=True)
    balance = await ledger.credit(services(request).db, key.id, body.tokens, body.note)
    await services(request).keys.changed(key.id)
    return JSONResponse({"id": key.id, "token_balance": balance})


routes = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}", get_key, methods=["GET"]),
    Route("/admin/keys/{key_id}", update_key, methods=["PATCH"]),
    Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/admin/keys/{key_id}/credit", credit_key, methods=["POST"]),
]
