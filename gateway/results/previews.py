"""Live previews: a job's latest frame kept in storage beside its results (overwritten in place, at
most one write every `preview_seconds`), and the signed links `Processing` events carry to them."""

from __future__ import annotations

import logging
import time

from gateway.results.files import EXTENSIONS, ResultStore
from providers.base import Preview

log = logging.getLogger("gateway.previews")

PREVIEW_STEM = "preview"


class Previews:
    """Turns an adapter's previews into signed links; a frame that comes sooner than `every` seconds
    after the last one kept is dropped (frames come at every sampler step)."""

    def __init__(self, results: ResultStore, *, every: float, ttl_seconds: int) -> None:
        self.results = results
        self.every = every
        self.ttl_seconds = ttl_seconds
        self._kept_at: dict[str, float] = {}

    async def link(self, job_id: str, preview: Preview) -> str | None:
        """The signed link for this preview, or None when it was dropped (too soon, or not storable)."""
        expires = int(time.time()) + self.ttl_seconds
        if preview.url is not None:
            return self.results.signed_stream_url(job_id, preview.url, expires)
        extension = EXTENSIONS.get(preview.content_type)
        if extension is None or not preview.data:
            return None
        now = time.monotonic()
        last = self._kept_at.get(job_id)
        if last is not None and now - last < self.every:
            return None
        self._kept_at[job_id] = now
        name = PREVIEW_STEM + extension
        try:
            await self.results.put_bytes(job_id, name, preview.data, preview.content_type)
        except Exception:
            # A preview is a nicety: storage trouble must not fail the job (its result would be stored
            # into the same trouble, and fail it there with a refund).
            log.exception("storing a preview of %s failed", job_id)
            return None
        return self.results.signed_url(job_id, name, expires)

    def kept(self, job_id: str) -> bool:
        return job_id in self._kept_at

    def forget(self, job_id: str) -> bool:
        """Stop tracking a job whose driver ended; True when a frame of it was stored."""
        return self._kept_at.pop(job_id, None) is not None
