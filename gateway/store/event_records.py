"""A job's event as the store logs it and every stream sends it: its number, its data, its JSON made once
and its SSE form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

TERMINAL_STATUSES = frozenset({"Completed", "Error", "Canceled"})


@dataclass(frozen=True)
class Event:
    job_id: str
    seq: int
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.data.get("status") in TERMINAL_STATUSES

    @cached_property
    def encoded(self) -> str:
        """The event's JSON, made once: the log stores it and every stream sends it.

        Kept readable (not ASCII-escaped) unless the data holds a lone UTF-16 surrogate, which an
        upstream's JSON may carry escaped and no UTF-8 text can hold: then escaped, or the log and the
        stream would fail on it.
        """
        text = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                return json.dumps(self.data, separators=(",", ":"))
        return text

    def json(self) -> str:
        return self.encoded

    def numbered(self, seq: int, encoded: str | None = None) -> Event:
        """The same event with its number in the log (its JSON, which holds no number, made once), or
        with `encoded` as its JSON (the exact text the log holds)."""
        event = Event(self.job_id, seq, self.data)
        event.__dict__["encoded"] = self.encoded if encoded is None else encoded
        return event

    def sse(self, retry_ms: int | None = None) -> str:
        """`id:` then one `data:` line, no `event:` line, so EventSource.onmessage sees every event."""
        retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
        return f"id: {self.seq}\n{retry}data: {self.json()}\n\n"
