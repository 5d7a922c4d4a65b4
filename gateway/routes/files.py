"""Serving mirrored results at signed, expiring URLs, with byte ranges so players can seek."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.errors import RangeNotSatisfiable
from gateway.routes.common import services

RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def range_verdict(header: str, size: int) -> str:
    """`ok`, `ignore` (malformed: RFC 9110 says serve the whole file) or `unsatisfiable` (416)."""
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        return "ignore"
    satisfiable = False
    for spec in specs.split(","):
        match = RANGE_SPEC.match(spec)
        if match is None or match.group(1) == match.group(2) == "":
            return "ignore"
        first, last = match.groups()
        if first and last and int(last) < int(first):
            return "ignore"
        if (first and int(first) < size) or (not first and int(last) > 0 and size > 0):
            satisfiable = True
    return "ok" if satisfiable else "unsatisfiable"


class ResultFile(FileResponse):
    """A FileResponse that can be told to serve the whole file whatever Range the client sent."""

    def __init__(self, *args: object, ignore_range: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ignore_range = ignore_range

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ignore_range:
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
            scope = {**scope, "headers": headers}
        await super().__call__(scope, receive, send)


async def download(request: Request) -> Response:
    svc = services(request)
    job_id, name = request.path_params["job_id"], request.path_params["name"]
    path = svc.results.verify(
        job_id, name, request.query_params.get("expires"), request.query_params.get("signature")
    )
    size = path.stat().st_size
    header = request.headers.get("range")
    verdict = range_verdict(header, size) if header is not None else "ok"
    if verdict == "unsatisfiable":
        raise RangeNotSatisfiable(
            f"The range {header!r} lies outside the file's {size} bytes.",
            headers={"Content-Range": f"bytes */{size}"},
            size=size,
        )
    return ResultFile(
        path, filename=name, content_disposition_type="inline", ignore_range=verdict == "ignore"
    )


routes = [Route("/files/{job_id}/{name}", download, methods=["GET", "HEAD"])]
