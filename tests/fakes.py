"""A scripted in-process provider for gateway tests: the prompt says what the upstream does."""

from __future__ import annotations

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
# Tests hold a job mid-flight by putting "hold" in the prompt and releasing this event.
RELEASE: dict[str, anyio.Event] = {}
# Set when a job reaches a named hold point ("submit": inside its upstream submit).
ENTERED: dict[str, anyio.Event] = {}
CHATTY_MESSAGE = "x" * 16384  # a big Processing event, so a client that never reads fills its buffers


def release(name: str = "default") -> None:
    RELEASE.setdefault(name, anyio.Event()).set()


class ScriptedProvider:
    """`fail` → Failed after progress; `unavailable` → UpstreamError; `hold` → waits for release();
    `slow-submit` → waits for release("submit") inside the submit; `chatty` → big Processing events
    until release("chatty")."""

    name = "scripted"

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        self.settings = settings
        self.cancelled: list[str] = []

    def prepare(self, task: Task) -> Task:
        return task

    async def run(self, task: Task) -> AsyncIterator[Update]:
        if "unavailable" in task.prompt:
            raise UpstreamError("upstream answered 503: overloaded", retryable=True, status=503)
        if "slow-submit" in task.prompt:
            ENTERED.setdefault("submit", anyio.Event()).set()
            await RELEASE.setdefault("submit", anyio.Event()).wait()
        yield Submitted(f"up-{task.job_id}")
        if "chatty" in task.prompt:
            chatty = RELEASE.setdefault("chatty", anyio.Event())
            for step in range(400):
                if chatty.is_set():
                    break
                yield Progress(step % 100, CHATTY_MESSAGE)
                await anyio.sleep(0.005)
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
        yield Progress(75)
        if "fail" in task.prompt:
            yield Failed("the upstream refused: content policy")
            return
        yield Succeeded([f"https://cdn.example/{task.job_id}.wav"], "audio/wav")

    async def cancel(self, upstream_id: str) -> bool:
        self.cancelled.append(upstream_id)
        return True

    async def aclose(self) -> None:
        pass
