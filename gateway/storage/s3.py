"""The S3 engine: results as objects `{prefix}/{job_id}/{name}`, downloads redirected to presigned GETs."""

from __future__ import annotations

import mimetypes
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.contract.errors import Expired, NotFound
from gateway.storage.http import check_range, inline_disposition

PRESIGN_MAX_SECONDS = 3600
"""A presigned URL only has to outlive the redirect and a player's seeks, never the signed link itself."""

MISSING = ("404", "NoSuchKey", "NotFound")


def make_client() -> Any:
    """An S3 client from the standard AWS variables; boto3 reads AWS_ENDPOINT_URL and the keys itself."""
    # botocore reads only AWS_DEFAULT_REGION; AWS_REGION is what other SDKs and many platforms set.
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
    config = Config(signature_version="s3v4", retries={"mode": "standard"})
    return boto3.session.Session().client("s3", region_name=region, config=config)


class S3Storage:
    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # boto3 clients are thread-safe (sessions are not), so one client serves every worker thread.
        self.client: Any = client if client is not None else make_client()

    def key(self, job_id: str, name: str) -> str:
        return f"{self.prefix}/{job_id}/{name}" if self.prefix else f"{job_id}/{name}"

    async def _call(self, method: str, /, **kwargs: Any) -> Any:
        # boto3 blocks; every call runs in a worker thread so the event loop keeps streaming.
        return await anyio.to_thread.run_sync(partial(getattr(self.client, method), **kwargs))

    async def put(self, job_id: str, name: str, source: Path, content_type: str) -> None:
        # upload_file switches to a multipart upload for large videos on its own.
        await self._call(
            "upload_file",
            Filename=str(source),
            Bucket=self.bucket,
            Key=self.key(job_id, name),
            ExtraArgs={"ContentType": content_type},
        )

    async def _head(self, job_id: str, name: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = await self._call(
                "head_object", Bucket=self.bucket, Key=self.key(job_id, name)
            )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in MISSING:
                return None
            raise
        return head

    async def exists(self, job_id: str, name: str) -> bool:
        return await self._head(job_id, name) is not None

    async def serve(self, request: Request, job_id: str, name: str, expires: int) -> Response:
        # One HEAD first, so that a swept result is the gateway's JSON 404 and a range past the end its
        # JSON 416, as with the folder engine, instead of S3's XML after the redirect.
        head = await self._head(job_id, name)
        if head is None:
            raise NotFound("No such result (it may have been deleted after its retention period).")
        size = int(head.get("ContentLength", 0))
        content_type = str(head.get("ContentType") or mimetypes.guess_type(name)[0] or "")
        check_range(request.headers.get("range"), size)
        disposition = inline_disposition(name)
        if request.method == "HEAD":
            # A presigned GET does not sign HEAD, so the gateway answers HEAD itself from what S3 said.
            return Response(
                status_code=200,
                headers={
                    "content-length": str(size),
                    "content-type": content_type or "application/octet-stream",
                    "content-disposition": disposition,
                    "accept-ranges": "bytes",
                },
            )
        seconds = min(PRESIGN_MAX_SECONDS, int(expires - time.time()))
        if seconds < 1:
            raise Expired("This download link has expired.")
        params: dict[str, str] = {
            "Bucket": self.bucket,
            "Key": self.key(job_id, name),
            "ResponseContentDisposition": disposition,
        }
        if content_type:
            params["ResponseContentType"] = content_type
        url: str = await anyio.to_thread.run_sync(
            partial(self.client.generate_presigned_url, "get_object", Params=params, ExpiresIn=seconds)
        )
        # no-store: a cached redirect would outlive the presigned URL it points at.
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})

    async def delete(self, job_id: str) -> None:
        await anyio.to_thread.run_sync(self._delete, job_id)

    def _delete(self, job_id: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        # A page holds at most 1000 keys, which is also what one delete_objects call accepts.
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(job_id, "")):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    async def aclose(self) -> None:
        self.client.close()
