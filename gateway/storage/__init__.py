"""Result storage engines behind one protocol, and `open_storage` that picks one from `storage_url`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from gateway.settings import Settings


class Storage(Protocol):
    """Where mirrored results live. Names are already validated and links verified by ResultStore."""

    async def put(self, job_id: str, name: str, source: Path, content_type: str) -> None:
        """Store the downloaded file `source` as `job_id/name`; the engine may move it away."""
        ...

    async def exists(self, job_id: str, name: str) -> bool: ...

    async def serve(self, request: Request, job_id: str, name: str, expires: int) -> Response:
        """Answer a verified download (raises NotFound); nothing it hands out may outlive `expires`."""
        ...

    async def delete(self, job_id: str) -> None:
        """Delete every result of the job; deleting what is not there is not an error."""
        ...

    async def aclose(self) -> None: ...


def open_storage(settings: Settings) -> Storage:
    """Unset: the data dir's files folder; `file:///abs/path`: a folder there; `s3://bucket/prefix`: S3."""
    url = settings.storage_url
    if not url:
        from gateway.storage.folder import FolderStorage

        return FolderStorage(settings.files_dir)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"storage_url {url!r}: a folder is file:///absolute/path")
        from gateway.storage.folder import FolderStorage

        return FolderStorage(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"storage_url {url!r}: S3 is s3://bucket/prefix")
        # Imported here so that a gateway storing into a folder never pays for loading boto3.
        from gateway.storage.s3 import S3Storage

        return S3Storage(parts.netloc, unquote(parts.path).strip("/"))
    raise ValueError(f"storage_url {url!r}: expected file:///path or s3://bucket/prefix")
