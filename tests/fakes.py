"""A scripted in-process provider for gateway tests: the prompt says what the upstream does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio

from providers.base import (
    Failed,
    Preview,
    Progress,
    ProviderSettings,
    Queued,
    Sleep,
    Submitted,
    Succeeded,
    Task,
    Update,
    UpstreamError,
)

PREVIEW_FRAME = b"\x89PNG\r\n\x1a\n a frame"
# Tests hold a job mid-flight by putting "hold" in the prompt and releasing this event, or
# "gate:<name>" and releasing that name.
RELEASE: dict[str, anyio.Event] = {}
REFUSED: set[str] = set()
"""Credentials the scripted upstream refuses as a bad key (401) — until a test takes them out."""
CALLS: list[tuple[str, str | None, str]] = []
"""Every call to a scripted upstream: (what, the credential it carried, the job or upstream id)."""


def release(name: str = "default") -> None:
    RELEASE.setdefault(name, anyio.Event()).set()


class ScriptedProvider:
    """`fail` → Failed after progress; `unavailable` → UpstreamError; `hold` → waits for release();
    `gate:<name>` → waits for release(name); `made:<seconds>` → reports that many seconds produced."""

    name = "scripted"
    reports = frozenset({"duration"})

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        self.settings = settings
        self.cancelled: list[str] = []

    def prepare(self, task: Task) -> Task:
        return task

    def _call(self, what: str, subject: str) -> None:
        CALLS.append((what, self.settings.api_key, subject))
        if self.settings.api_key in REFUSED:
            raise UpstreamError(
                "upstream answered 401: invalid API key",
                retryable=False,
                status=401,
                account_refused="credential refused: upstream answered 401: invalid API key",
            )

    async def run(self, task: Task) -> AsyncIterator[Update]:
        self._call("poll" if task.upstream_id else "submit", task.upstream_id or task.job_id)
        if "unavailable" in task.prompt:
            raise UpstreamError("upstream answered 503: overloaded", retryable=True, status=503)
        yield Submitted(f"up-{task.job_id}")
        yield Queued(position=2)
        yield Progress(25, "dreaming")
        if "preview" in task.prompt:  # two frames in quick succession, then a stream to listen to
            yield Progress(preview=Preview("image/png", PREVIEW_FRAME))
            yield Progress(preview=Preview("image/png", PREVIEW_FRAME + b"later"))
            yield Progress(
                50, "streaming", Preview("audio/mpeg", url=f"https://cdn.example/{task.job_id}.mp3")
            )
        if "hold" in task.prompt:
            await RELEASE.setdefault("default", anyio.Event()).wait()
        if gate := re.search(r"gate:(\S+)", task.prompt):
            await RELEASE.setdefault(gate.group(1), anyio.Event()).wait()
        yield Progress(75)
        if "fail" in task.prompt:
            yield Failed("the upstream refused: content policy")
            return
        made = re.search(r"made:(\d+(?:\.\d+)?)", task.prompt)
        produced = {"duration": float(made.group(1))} if made else {}
        yield Succeeded([f"https://cdn.example/{task.job_id}.wav"], "audio/wav", produced)

    async def cancel(self, upstream_id: str) -> bool:
        self._call("cancel", upstream_id)
        self.cancelled.append(upstream_id)
        return True

    async def aclose(self) -> None:
        pass
