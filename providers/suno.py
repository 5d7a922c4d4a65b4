"""Suno through a self-hosted suno-api server: submit two clips, poll them until both are complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, RootModel

from providers.base import (
    Failed,
    OptionError,
    Preview,
    Progress,
    ProviderSettings,
    Queued,
    Sleep,
    Submitted,
    Submitting,
    Succeeded,
    Task,
    Update,
    UpstreamClient,
    apply_style_suffix,
    parse,
    poll_pause,
)

# suno-api reports no percent: a coarse mapping from its statuses.
STATUS_PROGRESS = {"submitted": 5, "queued": 10, "streaming": 60, "complete": 100}


class Clip(BaseModel):
    id: str
    status: str
    audio_url: str | None = None
    title: str | None = None
    error_message: str | None = None


Clips = RootModel[list[Clip]]


def _stream(clips: list[Clip]) -> Preview | None:
    """While a clip streams, its audio_url already plays (partial): the first such is the preview."""
    url = next((c.audio_url for c in clips if c.status == "streaming" and c.audio_url), None)
    return Preview("audio/mpeg", url=url) if url else None


class SunoProvider:
    name = "suno"

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
        self.client = UpstreamClient(settings, headers, **kwargs)

    def prepare(self, task: Task) -> Task:
        instrumental = task.options.get("make_instrumental", False)
        if not isinstance(instrumental, bool):
            raise OptionError("make_instrumental", "make_instrumental must be true or false")
        return replace(task, prompt=apply_style_suffix(task.prompt, task.style_label))

    async def run(self, task: Task) -> AsyncIterator[Update]:
        if task.upstream_id:
            ids = task.upstream_id.split(",")
        else:
            body = {
                "prompt": task.prompt,
                "make_instrumental": bool(task.options.get("make_instrumental", False)),
                "wait_audio": False,
            }
            yield Submitting()
            clips = parse(await self.client.submit("POST", "/api/generate", json=body), Clips).root
            if not clips:
                yield Failed("suno-api accepted the request but returned no clips")
                return
            ids = [clip.id for clip in clips]
            yield Submitted(",".join(ids))
        last: str | None = None
        while True:
            response = await self.client.request("GET", "/api/get", params={"ids": ",".join(ids)})
            clips = parse(response, Clips).root
            if not clips:
                yield Failed("suno-api returned no clips for the submitted ids")
                return
            failed = next((c for c in clips if c.status == "error"), None)
            if failed:
                yield Failed(failed.error_message or f"suno clip {failed.id} failed")
                return
            if all(c.status == "complete" for c in clips):
                urls = [c.audio_url for c in clips if c.audio_url]
                if len(urls) != len(clips):
                    yield Failed("suno-api marked a clip complete without an audio_url")
                    return
                yield Succeeded(urls, "audio/mpeg")
                return
            unknown = [c.status for c in clips if c.status not in STATUS_PROGRESS]
            if unknown:
                yield Failed(f"suno-api answered an unknown clip status {unknown[0]!r}")
                return
            status = min((c.status for c in clips), key=STATUS_PROGRESS.__getitem__)
            # submitted and queued are both the upstream's queue: one Queued, then Processing.
            phase = "queued" if status in ("submitted", "queued") else status
            if phase != last:
                last = phase
                yield (
                    Queued()
                    if phase == "queued"
                    else Progress(STATUS_PROGRESS[status], status, _stream(clips))
                )
            await poll_pause(self.client)

    async def cancel(self, upstream_id: str) -> bool:
        return False  # suno-api has no cancel endpoint: the clips finish upstream regardless.

    async def aclose(self) -> None:
        await self.client.aclose()
