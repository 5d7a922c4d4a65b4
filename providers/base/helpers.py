"""Small shared pieces of an adapter's loop: change filtering, elapsed-time progress, content types, guarded cancels."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import PurePosixPath

import httpx

from providers.base.task import ProviderSettings, Task
from providers.base.updates import Progress, Update
from providers.base.upstream import UpstreamClient


class Changes:
    """Lets an update through only when it differs from the last one let through: polls repeat."""

    def __init__(self) -> None:
        self._last: Update | None = None

    def new(self, update: Update) -> bool:
        if update == self._last:
            return False
        self._last = update
        return True


class ElapsedEstimate:
    """Progress guessed from time spent working, for upstreams that report no percent: against a
    typical duration (`typical_seconds` in the model's params, else the provider's extra, else the
    adapter's default), stopping at 95 so that only the upstream's own "done" reaches 100. Time is
    counted in poll intervals, so it restarts from 0 when a job is re-attached."""

    def __init__(self, task: Task, settings: ProviderSettings, default_typical: float) -> None:
        configured = task.params.get("typical_seconds") or settings.extra.get("typical_seconds")
        self.typical = float(configured or default_typical)
        self.interval = settings.poll_interval
        self.elapsed = 0.0

    def next(self, doing: str) -> Progress:
        """The estimate for this poll; the next one counts a poll interval more."""
        percent = max(0, min(95, int(100 * self.elapsed / self.typical))) if self.typical > 0 else 0
        message = f"{doing}: {self.elapsed:.0f} s so far, typically about {self.typical:.0f} s"
        self.elapsed += self.interval
        return Progress(percent, message)


# Types `mimetypes` may not know on every platform.
_MEDIA_TYPES = {".webp": "image/webp", ".webm": "video/webm", ".mp4": "video/mp4", ".mp3": "audio/mpeg"}


def guess_content_type(name: str, default: str = "application/octet-stream") -> str:
    """The media type a result's file name or URL path suggests; `default` when it suggests none, or
    one of another kind than the default's (a video URL is a video, whatever odd suffix it has)."""
    suffix = PurePosixPath(httpx.URL(name).path if "://" in name else name).suffix.lower()
    guess = _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(f"result{suffix}")[0]
    kind = default.split("/")[0]
    if guess is None or (kind in ("image", "video", "audio") and not guess.startswith(f"{kind}/")):
        return default
    return guess


async def delete_unless_finished(
    client: UpstreamClient, url: str, finished: Callable[[httpx.Response], bool]
) -> bool:
    """Cancel by `DELETE url`, but only a task that is still going: on upstreams where a DELETE of a
    finished task deletes its output instead (Luma, Runway), a late cancel must not destroy a result."""
    response = await client.request_allowing("GET", url, (404,))
    if response.status_code == 404 or finished(response):
        return False
    response = await client.request_allowing("DELETE", url, (404,))
    return response.status_code != 404
