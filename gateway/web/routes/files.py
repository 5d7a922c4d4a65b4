"""Serving mirrored results at signed, expiring URLs; the storage engine answers (file with ranges, or redirect)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.web.routes.common import services


async def download(request: Request) -> Response:
    job_id, name = request.path_params["job_id"], request.path_params["name"]
    return await services(request).results.download(request, job_id, name)


routes = [Route("/files/{job_id}/{name}", download, methods=["GET", "HEAD"])]
