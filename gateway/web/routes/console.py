"""The operators' console at /admin: one static page; everything it shows comes from the admin API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from gateway.contract.errors import NotFound
from gateway.web.routes.common import services
from gateway.web.routes.playground import STATIC

# Stricter than the playground's: the console shows no media, talks only to this origin, is never framed.
CSP = (
    "default-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)


async def console(request: Request) -> Response:
    # The page itself holds nothing secret, but with the admin API off there is nothing for it to show.
    if not services(request).settings.admin_token:
        raise NotFound(f"Nothing is served at {request.url.path}.")
    return FileResponse(
        STATIC / "console.html",
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
        },
    )


routes = [Route("/admin", console, methods=["GET"])]
