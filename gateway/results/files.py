"""Results: mirroring upstream outputs into a storage engine, and the signed, expiring URLs that serve them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import anyio
import httpx
from starlette.responses import RedirectResponse, Response

from gateway.contract.errors import Expired, Forbidden, NotFound
from gateway.contract.parsing import canonical_number
from gateway.results.addresses import Resolver, internal, internal_host, literal_address, resolve
from gateway.storage import Storage, open_storage
from gateway.store import jobs as job_store
from gateway.store.db import Database, iso, now

if TYPE_CHECKING:
    from starlette.requests import Request

    from gateway.settings import Settings

log = logging.getLogger("gateway.files")

ALLOWED_KINDS = ("audio/", "video/", "image/")
STREAM = "stream"
"""The name of a link to an upstream's stream (no stored file has it: results are `result-N.ext`)."""
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


MAX_REDIRECTS = 5


class MirrorError(Exception):
    """A result could not be copied into the gateway's storage; the job fails with a refund."""


def origin(url: httpx.URL) -> tuple[str, int | None]:
    """Host and port of a URL (the scheme's default port when none is written)."""
    return url.host.lower(), url.port or {"http": 80, "https": 443}.get(url.scheme)


class ResultStore:
    """Signs and checks result links and downloads upstream outputs; a Storage engine keeps the bytes."""

    def __init__(
        self,
        storage: Storage,
        secret: bytes,
        public_url: str,
        *,
        max_bytes: int,
        staging: Path,
        timeout: float = 60,
        resolver: Resolver = resolve,
    ) -> None:
        self.storage = storage
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.max_bytes = max_bytes
        self.staging = staging
        self.resolver = resolver
        # Redirects are followed by hand, so that every hop's host is checked before it is asked.
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10), follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings, signing_key: bytes) -> ResultStore:
        return cls(
            open_storage(settings),
            signing_key,
            settings.public_url,
            max_bytes=settings.max_result_bytes,
            # Beside the default files folder, so that the folder engine stores a download by renaming it.
            staging=settings.data_dir / "staging",
        )

    async def aclose(self) -> None:
        try:
            await self.http.aclose()
        finally:
            await self.storage.aclose()

    # --- signing ---------------------------------------------------------------------------------

    def _signature(self, job_id: str, name: str, expires: int) -> str:
        # surrogatepass: a lone surrogate in a link's name must not raise; no real name has one
        message = f"{job_id}/{name}:{expires}".encode(errors="surrogatepass")
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def signed_url(self, job_id: str, name: str, expires: int) -> str:
        signature = self._signature(job_id, name, expires)
        return f"{self.public_url}/files/{job_id}/{quote(name)}?expires={expires}&signature={signature}"

    def signed_stream_url(self, job_id: str, source: str, expires: int) -> str:
        """A link to a stream the upstream serves (a preview still rendering), signed with its source:
        the gateway checks it and redirects there, so it expires like a result link."""
        signature = self._signature(job_id, f"{STREAM}:{source}", expires)
        query = urlencode({"src": source, "expires": expires, "signature": signature})
        return f"{self.public_url}/files/{job_id}/{STREAM}?{query}"

    def verify(
        self, job_id: str, name: str, expires: str | None, signature: str | None, signed: str | None = None
    ) -> int:
        """A signed link's expiry: 403 bad signature, 410 expired, 404 a name no result can have."""
        expiry = canonical_number(expires)  # the very text the signature was made over
        if expiry is None or not signature:
            raise Forbidden("This download link is not signed.")
        # compared as bytes: compare_digest refuses str with characters outside ASCII (a 500 before)
        expected = self._signature(job_id, signed or name, expiry)
        if not hmac.compare_digest(expected.encode(), signature.encode(errors="surrogatepass")):
            raise Forbidden("This download link's signature does not match.")
        if expiry < time.time():
            raise Expired("This download link has expired.")
        if not valid_name(job_id, name):
            raise NotFound("No such result (it may have been deleted after its retention period).")
        return expiry

    async def download(self, request: Request, job_id: str, name: str) -> Response:
        """The answer to `/files/{job_id}/{name}?expires=&signature=`, from whichever engine stores it."""
        query = request.query_params
        if name == STREAM:
            source = query.get("src") or ""
            self.verify(job_id, name, query.get("expires"), query.get("signature"), f"{STREAM}:{source}")
            return RedirectResponse(source, 307, headers={"Cache-Control": "no-store"})
        expires = self.verify(job_id, name, query.get("expires"), query.get("signature"))
        return await self.storage.serve(request, job_id, name, expires)

    async def put_bytes(self, job_id: str, name: str, data: bytes, content_type: str) -> None:
        """Store small bytes (a preview frame) as `job_id/name`, replacing what is there."""
        await anyio.Path(self.staging).mkdir(parents=True, exist_ok=True)
        tmp = anyio.Path(self.staging / f"{job_id}-{uuid.uuid4().hex}.part")
        try:
            await tmp.write_bytes(data)
            await self.storage.put(job_id, name, Path(tmp), content_type)
        finally:
            await tmp.unlink(missing_ok=True)

    # --- mirroring -------------------------------------------------------------------------------

    async def mirror(
        self, job_id: str, urls: list[str], expires: int, *, trusted: Collection[str] = ()
    ) -> tuple[list[str], str]:
        """Copy each upstream output into storage (streamed, size-capped, type-checked); signed URLs back.

        Outputs are fetched only from public addresses, and from the hosts of the `trusted` base URLs
        (the provider's own configured host: a local ComfyUI, the simulator), wherever those are."""
        signed: list[str] = []
        first_type = ""
        own = {origin(httpx.URL(base)) for base in trusted}
        try:
            for index, url in enumerate(urls, start=1):
                name, content_type = await self._mirror_one(job_id, url, f"result-{index}", own)
                first_type = first_type or content_type
                signed.append(self.signed_url(job_id, name, expires))
        except MirrorError:
            # The job fails without links, so nothing would ever sweep the outputs already stored.
            try:
                await self.delete(job_id)
            except Exception:
                log.exception("removing the partial results of %s failed", job_id)
            raise
        return signed, first_type

    async def _mirror_one(
        self, job_id: str, url: str, stem: str, own: set[tuple[str, int | None]]
    ) -> tuple[str, str]:
        await anyio.Path(self.staging).mkdir(parents=True, exist_ok=True)
        # Not mkstemp: its 0600 would follow the file into a folder engine, unlike the umask's mode.
        tmp = anyio.Path(self.staging / f"{job_id}-{uuid.uuid4().hex}.part")
        try:
            name, content_type = await self._download(url, tmp, stem, own)
            try:
                await self.storage.put(job_id, name, Path(tmp), content_type)
            except Exception as exc:
                # A full disk or an unreachable bucket fails this job with a refund, not the runner.
                log.exception("storing a result of %s failed", job_id)
                raise MirrorError(f"storing the result failed: {type(exc).__name__}") from exc
            return name, content_type
        finally:
            # The engine may have moved the file away already (the folder engine renames it).
            await tmp.unlink(missing_ok=True)

    async def _download(
        self, url: str, tmp: anyio.Path, stem: str, own: set[tuple[str, int | None]]
    ) -> tuple[str, str]:
        try:
            async with self._fetch(url, own) as response:
                if response.status_code != 200:
                    raise MirrorError(f"fetching the result answered {response.status_code}")
                content_type = _content_type(response, url)
                if not content_type.startswith(ALLOWED_KINDS):
                    raise MirrorError(
                        f"the result is {content_type or 'of no type'}, not audio, video or image"
                    )
                name = stem + (EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or "")
                size = 0
                async with await anyio.open_file(tmp, "wb") as out:
                    async for chunk in response.aiter_bytes(1 << 16):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise MirrorError(f"the result is larger than {self.max_bytes} bytes")
                        await out.write(chunk)
                if size == 0:
                    raise MirrorError("the result is empty")
                return name, content_type
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: a URL httpx cannot parse
            raise MirrorError(f"fetching the result failed: {type(exc).__name__}") from exc

    @asynccontextmanager
    async def _fetch(self, url: str, own: set[tuple[str, int | None]]) -> AsyncIterator[httpx.Response]:
        """The answer to GET url after its redirects, each hop checked before it is asked."""
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            trusted = await self._check(target, own)
            async with self.http.stream("GET", target) as response:
                if response.next_request is None:
                    if not trusted:
                        check_peer(response)
                    yield response
                    return
                target = response.next_request.url
        raise MirrorError(f"the result URL redirected more than {MAX_REDIRECTS} times")

    async def _check(self, url: httpx.URL, own: set[tuple[str, int | None]]) -> bool:
        """Refuses a URL that leads inside the operator's network; True for the provider's own host."""
        if url.scheme not in ("http", "https") or not url.host:
            raise MirrorError("the result URL is not an http(s) URL")
        if origin(url) in own:
            return True
        if reason := await internal_host(url.host, self.resolver):
            log.warning("refused to fetch a result from %s: %s", url.copy_with(query=None), reason)
            raise MirrorError("the result URL leads to a loopback, private or link-local address")
        return False

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
        if valid_name(job_id, "x"):
            await self.storage.delete(job_id)


def valid_name(job_id: str, name: str) -> bool:
    """Whether `job_id/name` can be a result: one path segment each, none hidden (so no `..`)."""
    return not (
        not job_id
        or not name
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or "/" in job_id
        or "\\" in job_id
        or job_id.startswith(".")
    )


def check_peer(response: httpx.Response) -> None:
    """The address the answer really came from, checked again: a name may resolve differently at
    connect time than when it was checked (DNS rebinding). Before a byte of the body is read."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    address = literal_address(str(peer[0])) if isinstance(peer, tuple) and peer else None
    if address is not None and internal(address):
        raise MirrorError("the result URL leads to a loopback, private or link-local address")


def _content_type(response: httpx.Response, url: str) -> str:
    header = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
    if header and header != "application/octet-stream":
        return header
    guessed, _ = mimetypes.guess_type(url.split("?")[0])
    return str(guessed or header)
