"""Serving mirrored results at signed, expiring URLs, with byte ranges so players can seek."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from gateway.routes.common import services


async def download(request: Request) -> Response:
    svc = services(request)
    job_id, name = request.path_params["job_id"], request.path_params["name"]
    path = svc.results.verify(
        job_id, name, request.query_params.get("expires"), request.query_params.get("signature")
    )
    return FileResponse(path, filename=name, content_disposition_type="inline")


routes = [Route("/files/{job_id}/{name}", download, methods=["GET", "HEAD"])]
