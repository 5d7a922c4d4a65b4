"""A scripted in-process provider for gateway tests: the prompt says what the upstream does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio

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
    SubmitUncertain,
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
# Set when a job reaches a named hold point ("submit": inside its upstream submit).
ENTERED: dict[str, anyio.Event] = {}
CHATTY_MESSAGE = "x" * 16384  # a big Processing event, so a client that never reads fills its buffers


def release(name: str = "default") -> None:
    RELEASE.setdefault(name, anyio.Event()).set()


class ScriptedProvider:
    """`fail` → Failed after progress; `unavailable` → UpstreamError; `hold` → waits for release();
    `gate:<name>` → waits for release(name); `made:<seconds>` → reports that many seconds produced;
    `hang-submit` → the submit reaches the upstream and answers only at release("submit");
    `no-answer` → the submit reaches the upstream and the answer is lost (SubmitUncertain);
    `slow-submit` → waits for release("submit") inside the submit; `chatty` → big Processing events
    until release("chatty"); `unannounced` → no Submitted, progress first; `result=<url>` → that URL
    is the result."""

    name = "scripted"
    reports = frozenset({"duration"})

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        self.settings = settings
        self.cancelled: list[str] = []
        self.submitted: list[str] = []
        """The job ids the upstream received a submit for, one entry per submit."""

    def prepare(self, task: Task) -> Task:
        width = task.options.get("width")
        if isinstance(width, int) and width % 8:  # a rule only the upstream knows, as ComfyUI's sizes
            raise OptionError("width", "width must be a multiple of 8.")
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
        if task.upstream_id is None:
            yield Submitting()
            self.submitted.append(task.job_id)
            if "hang-submit" in task.prompt:  # until release("submit"), which most tests never give
                await RELEASE.setdefault("submit", anyio.Event()).wait()
            if "no-answer" in task.prompt:
                raise SubmitUncertain("no answer to the submit: ReadTimeout")
        if "slow-submit" in task.prompt:
            ENTERED.setdefault("submit", anyio.Event()).set()
            await RELEASE.setdefault("submit", anyio.Event()).wait()
        if (
            "unannounced" not in task.prompt
        ):  # else progress comes first, as from a server that runs it at once
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
        if gate := re.search(r"gate:(\S+)", task.prompt):
            await RELEASE.setdefault(gate.group(1), anyio.Event()).wait()
        yield Progress(75)
        if "fail" in task.prompt:
            yield Failed("the upstream refused: content policy")
            return
        url = f"https://cdn.example/{task.job_id}.wav"
        if "result=" in task.prompt:
            url = task.prompt.split("result=", 1)[1].split()[0]
        made = re.search(r"made:(\d+(?:\.\d+)?)", task.prompt)
        produced = {"duration": float(made.group(1))} if made else {}
        yield Succeeded([url], "audio/wav", produced)

    async def cancel(self, upstream_id: str) -> bool:
        self._call("cancel", upstream_id)
        self.cancelled.append(upstream_id)
        return True

    async def aclose(self) -> None:
        pass


class FindingProvider(ScriptedProvider):
    """A scripted upstream that lists its tasks, as ComfyUI does: a lost submit is found again."""

    async def find_submitted(self, task: Task) -> str | None:
        return f"up-{task.job_id}" if task.job_id in self.submitted else None
