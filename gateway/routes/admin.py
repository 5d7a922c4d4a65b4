"""The operators' key API: create, list, read, update, revoke, credit. Takes the admin token only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import auth
from gateway.errors import InvalidRequest, NotFound
from gateway.parsing import control_character_in
from gateway.routes.common import MAX_INTEGER, read_json, services
from gateway.store import keys, ledger
from gateway.store.keys import ApiKey

# Operators' labels: long enough for any name or invoice note, short enough that a list stays a list.
MAX_NAME_CHARS = 200
MAX_NOTE_CHARS = 1000


def _text(body: dict[str, Any], field: str, limit: int, *, required: bool) -> str | None:
    """A label from the body: stripped, at most `limit` characters, no control characters."""
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(
            f"`{field}` must be a non-empty string." if required else f"`{field}` must be a string."
        )
    value = value.strip()
    if len(value) > limit:
        raise InvalidRequest(
            f"`{field}` is {len(value)} characters; the limit is {limit}.", field=field, limit=limit
        )
    if (control := control_character_in(value)) is not None:
        raise InvalidRequest(f"`{field}` holds the control character {control}.", field=field)
    return value


def _int_or_none(body: dict[str, Any], name: str, *, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INTEGER:
        raise InvalidRequest(f"`{name}` must be an integer from {minimum} to {MAX_INTEGER}, or null.")
    return value


def _models(request: Request, body: dict[str, Any]) -> list[str] | None:
    models = body.get("models")
    if models is None:
        return None
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidRequest("`models` must be null or a list of model ids.")
    unknown = [m for m in models if m not in services(request).settings.models]
    if unknown:
        raise InvalidRequest(f"Unknown model {unknown[0]!r} in `models`.")
    return models


async def _object_body(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


async def _key(request: Request) -> ApiKey:
    key = await keys.get(services(request).db, request.path_params["key_id"])
    if key is None:
        raise NotFound("No such API key.")
    return key


async def create_key(request: Request) -> Response:
    auth.require_admin(request)
    body = await _object_body(request)
    name = _text(body, "name", MAX_NAME_CHARS, required=True)
    tokens = _int_or_none(body, "tokens") or 0
    plain = keys.new_plain_key()
    record = await keys.create(
        services(request).db,
        key_hash=auth.hash_key(plain),
        prefix=auth.display_prefix(plain),
        name=name or "",
        tokens=tokens,
        models=_models(request, body),
        rate_limit_per_minute=_int_or_none(body, "rate_limit_per_minute", minimum=1),
        max_concurrent_jobs=_int_or_none(body, "max_concurrent_jobs", minimum=1),
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
    body = await _object_body(request)
    unknown = sorted(set(body) - {"name", "models", "rate_limit_per_minute", "max_concurrent_jobs"})
    if unknown:
        raise InvalidRequest(
            f"`{unknown[0]}` cannot be changed here (tokens move through /credit; revoke with DELETE)."
        )
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _text(body, "name", MAX_NAME_CHARS, required=True)
    if "models" in body:
        changes["models"] = _models(request, body)
    for field in ("rate_limit_per_minute", "max_concurrent_jobs"):
        if field in body:
            changes[field] = _int_or_none(body, field, minimum=1)
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
    body = await _object_body(request)
    tokens = body.get("tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens == 0 or abs(tokens) > MAX_INTEGER:
        raise InvalidRequest(
            f"`tokens` must be a non-zero integer up to {MAX_INTEGER} (negative takes tokens away)."
        )
    note = _text(body, "note", MAX_NOTE_CHARS, required=False)
    balance = await ledger.credit(services(request).db, key.id, tokens, note)
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
