"""The contract's errors over HTTP: the handlers that render them (classes: gateway.contract.errors)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from gateway.contract.errors import (
    ApiError,
    MethodNotAllowed,
    NotFound,
)

log = logging.getLogger("gateway")


def response(error: ApiError) -> JSONResponse:
    """The error as the client sees it: its JSON body, status and headers."""
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return response(NotFound(f"Nothing is served at {request.url.path}."))
    if exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
        headers = dict(exc.headers or {})
        if allowed := _allowed(request):
            headers["Allow"] = allowed
        return JSONResponse(error.body(), status_code=405, headers=headers)
    return JSONResponse(
        {"status": "Error", "message": exc.detail, "code": "http_error"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _allowed(request: Request) -> str:
    """Every method served at the request's path: Starlette names only those of the first route that
    matched it, and a path may be served by several (GET and POST /api/generations)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {
            "status": "Error",
            "message": "The gateway failed to answer; it was logged.",
            "code": "internal_error",
        },
        status_code=500,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
