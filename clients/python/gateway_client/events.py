"""The SDK's typed event: one event of a job's stream."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from httpx_sse import ServerSentEvent

# A job's statuses in the order its stream sends them; the last three end it.
STATUSES = ("Processing started", "Queued", "Processing", "Completed", "Error", "Canceled")
TERMINAL = frozenset({"Completed", "Error", "Canceled"})


@dataclass(frozen=True)
class JobEvent:
    """One event of a job's stream; `data` holds every field the gateway sent."""

    id: int
    status: str
    job_id: str
    data: dict[str, Any] = field(repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def progress(self) -> int | None:
        value = self.data.get("progress")
        return int(value) if value is not None else (100 if self.status == "Completed" else None)

    @property
    def position(self) -> int | None:
        value = self.data.get("position")
        return int(value) if value is not None else None

    @property
    def url(self) -> str | None:
        return self.data.get("url")

    @property
    def urls(self) -> list[str]:
        return list(self.data.get("urls") or ([self.url] if self.url else []))

    @property
    def message(self) -> str | None:
        return self.data.get("message")

    @property
    def preview_url(self) -> str | None:
        """On `Processing` events with a live preview: a signed link to the latest frame (an image),
        or to the audio streaming while it renders; None otherwise."""
        return self.data.get("preview_url")

    @classmethod
    def from_sse(cls, sse: ServerSentEvent) -> JobEvent:
        data = json.loads(sse.data)
        return cls(id=int(sse.id), status=data["status"], job_id=data["job_id"], data=data)
