"""The browser playground: one static page and its script and style, all served by the gateway."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
# Scripts and styles only from here; results may be mirrored here or passed through from a provider.
CSP = "default-src 'self'; img-src * data: blob:; media-src * blob:; connect-src 'self'; object-src 'none'"


async def index(request: Request) -> Response:
    return FileResponse(
        STATIC / "index.html", headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
    )


routes = [
    Route("/", index, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
