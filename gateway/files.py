"""Results: mirroring upstream outputs into the data dir, and the signed, expiring URLs that serve them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import anyio
import httpx

from gateway.errors import Expired, Forbidden, NotFound
from gateway.store import jobs as job_store
from gateway.store.db import Database, iso, now

log = logging.getLogger("gateway.files")

ALLOWED_KINDS = ("audio/", "video/", "image/")
EXTENSIONS = {
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
}


class MirrorError(Exception):
    """A result could not be copied into the gateway's storage; the job fails with a refund."""


class ResultStore:
    def __init__(
        self, root: Path, secret: bytes, public_url: str, *, max_bytes: int, timeout: float = 60
    ) -> None:
        self.root = root
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.max_bytes = max_bytes
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10), follow_redirects=True)

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- signing ---------------------------------------------------------------------------------

    def _signature(self, job_id: str, name: str, expires: int) -> str:
        message = f"{job_id}/{name}:{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def signed_url(self, job_id: str, name: str, expires: int) -> str:
        signature = self._signature(job_id, name, expires)
        return f"{self.public_url}/files/{job_id}/{quote(name)}?expires={expires}&signature={signature}"

    def verify(self, job_id: str, name: str, expires: str | None, signature: str | None) -> Path:
        """The file behind a signed URL: 403 bad signature, 410 expired, 404 unknown."""
        if not expires or not expires.isdigit() or not signature:
            raise Forbidden("This download link is not signed.")
        if not hmac.compare_digest(self._signature(job_id, name, int(expires)), signature):
            raise Forbidden("This download link's signature does not match.")
        if int(expires) < time.time():
            raise Expired("This download link has expired.")
        path = self.path(job_id, name)
        if path is None or not path.is_file():
            raise NotFound("No such result (it may have been deleted after its retention period).")
        return path

    def path(self, job_id: str, name: str) -> Path | None:
        if "/" in name or "\\" in name or name.startswith(".") or "/" in job_id or job_id.startswith("."):
            return None
        return self.root / job_id / name

    # --- mirroring -------------------------------------------------------------------------------

    async def mirror(self, job_id: str, urls: list[str], expires: int) -> tuple[list[str], str]:
        """Copy each upstream output to disk (streamed, size-capped, type-checked); signed URLs back."""
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=True)
        signed: list[str] = []
        first_type = ""
        for index, url in enumerate(urls, start=1):
            name, content_type = await self._download(url, folder, f"result-{index}")
            first_type = first_type or content_type
            signed.append(self.signed_url(job_id, name, expires))
        return signed, first_type

    async def _download(self, url: str, folder: Path, stem: str) -> tuple[str, str]:
        try:
            async with self.http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise MirrorError(f"fetching the result answered {response.status_code}")
                content_type = _content_type(response, url)
                if not content_type.startswith(ALLOWED_KINDS):
                    raise MirrorError(
                        f"the result is {content_type or 'of no type'}, not audio, video or image"
                    )
                name = stem + (EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or "")
                tmp = folder / (name + ".part")
                size = 0
                async with await anyio.open_file(tmp, "wb") as out:
                    async for chunk in response.aiter_bytes(1 << 16):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise MirrorError(f"the result is larger than {self.max_bytes} bytes")
                        await out.write(chunk)
                if size == 0:
                    raise MirrorError("the result is empty")
                await anyio.Path(tmp).rename(folder / name)
                return name, content_type
        except httpx.HTTPError as exc:
            raise MirrorError(f"fetching the result failed: {type(exc).__name__}") from exc

    async def sweep(self, db: Database) -> int:
        """Delete the results past their retention; their links already answer 410."""
        deleted = 0
        for job_id in await job_store.results_past(db, iso(now()) or ""):
            await self.delete(job_id)
            await job_store.mark_results_deleted(db, job_id)
            deleted += 1
        return deleted

    async def sweep_forever(self, db: Database, every: float) -> None:
        while True:
            try:
                if deleted := await self.sweep(db):
                    log.info("deleted the results of %d expired jobs", deleted)
            except Exception:
                log.exception("the result sweep failed; trying again later")
            await anyio.sleep(every)

    async def delete(self, job_id: str) -> None:
        folder = self.root / job_id
        if folder.is_dir():
            await anyio.to_thread.run_sync(shutil.rmtree, folder, True)


def _content_type(response: httpx.Response, url: str) -> str:
    header = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
    if header and header != "application/octet-stream":
        return header
    guessed, _ = mimetypes.guess_type(url.split("?")[0])
    return str(guessed or header)
