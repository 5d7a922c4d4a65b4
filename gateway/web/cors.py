"""Cross-origin reads of the key-less URLs the gateway hands out: a job's events (by `?token=`) and signed downloads."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def shareable(path: str) -> bool:
    """The URLs that carry their own authority (a signed token or signature), never an API key."""
    return path.startswith("/files/") or (path.startswith("/api/generations/") and path.endswith("/events"))


class CrossOriginReads:
    """Lets a page on an allowed origin follow a job with EventSource and fetch its results.

    Only GET and HEAD of those URLs answer with `Access-Control-Allow-Origin`, and never with
    credentials: everything that takes an API key needs an Authorization header, which a cross-origin
    page could only send after a preflight this gateway does not answer.
    """

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.origins or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        if not origin or not shareable(scope["path"]) or not (self.any_origin or origin in self.origins):
            await self.app(scope, receive, send)
            return

        async def send_allowed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_allowed)
