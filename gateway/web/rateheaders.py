"""X-RateLimit-* on answers no handler authenticated (405, unknown paths) when the request carries a valid key."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.store.keys import hash_key
from gateway.web.auth import bearer


class RateHeadersEverywhere:
    """A handler that authenticates leaves its key's headers for the access log to add; an answer
    given before any handler ran (the router's 404 and 405) gets them here, so every answer to a
    request with a valid API key carries them, as the contract says."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or b"authorization" not in dict(scope.get("headers", [])):
            await self.app(scope, receive, send)
            return
        request = Request(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and not scope.get("state", {}).get("rate_headers"):
                extra = await _headers_for(request)
                if extra:
                    headers = MutableHeaders(scope=message)
                    for name, value in extra.items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _headers_for(request: Request) -> dict[str, str]:
    plain = bearer(request)
    services = getattr(request.app.state, "services", None)
    if plain is None or services is None:
        return {}
    key = await services.keys.find_active(hash_key(plain))
    if key is None:
        return {}
    headers: dict[str, str] = await request.app.state.limiter.headers(key.id, key.rate_limit_per_minute)
    return headers
