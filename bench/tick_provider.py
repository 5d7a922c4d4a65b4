"""A provider for the held-stream benchmark: one progress event per `interval` seconds, no upstream I/O.

It is configured like any provider (one module plus config), so the benchmark measures the gateway's
own cost per stream — auth, the durable event log, fan-out, SSE — apart from upstream polling.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio

from providers.base import Progress, ProviderSettings, Sleep, Submitted, Succeeded, Task, Update


class TickProvider:
    name = "tick"

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        self.ticks = int(settings.extra.get("ticks", 10))
        self.interval = float(settings.extra.get("interval", 1.0))

    def prepare(self, task: Task) -> Task:
        return task

    async def run(self, task: Task) -> AsyncIterator[Update]:
        ticks = int(task.params.get("ticks", self.ticks))
        # `message_bytes` (a model's upstream param): each event's message is the time it was made,
        # padded to that size, so a benchmark can tell how late each event reaches its readers.
        padding = int(task.params.get("message_bytes", 0))
        interval = float(task.params.get("interval", self.interval))
        yield Submitted(f"tick-{task.job_id}")
        for tick in range(1, ticks + 1):
            await anyio.sleep(interval)
            message = f"{time.time():.6f} ".ljust(padding, ".") if padding else None
            yield Progress(min(99, tick * 100 // (ticks + 1)), message)
        yield Succeeded(["http://127.0.0.1:9/result.wav"], "audio/wav")

    async def cancel(self, upstream_id: str) -> bool:
        return True

    async def aclose(self) -> None:
        pass
