"""Reading SSE bodies the way a client does: id and data per event, comments kept apart."""

from __future__ import annotations

import json
from typing import Any


def parse(text: str) -> list[tuple[int, dict[str, Any]]]:
    events: list[tuple[int, dict[str, Any]]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            events.append((int(fields["id"]), json.loads(fields["data"])))
    return events
