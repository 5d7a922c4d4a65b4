"""HTTP details every engine answers alike: the Range verdict (and its JSON 416) and Content-Disposition."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from gateway.errors import RangeNotSatisfiable

RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")

Verdict = Literal["ok", "ignore", "unsatisfiable"]


def range_verdict(header: str, size: int) -> Verdict:
    """`ok`, `ignore` (malformed: RFC 9110 says serve the whole file) or `unsatisfiable` (416)."""
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        return "ignore"
    satisfiable = False
    for spec in specs.split(","):
        match = RANGE_SPEC.match(spec)
        if match is None or match.group(1) == match.group(2) == "":
            return "ignore"
        first, last = match.groups()
        if first and last and int(last) < int(first):
            return "ignore"
        if (first and int(first) < size) or (not first and int(last) > 0 and size > 0):
            satisfiable = True
    return "ok" if satisfiable else "unsatisfiable"


def check_range(header: str | None, size: int) -> Verdict:
    """The verdict on a request's Range header; an unsatisfiable one raises the JSON 416."""
    verdict = range_verdict(header, size) if header is not None else "ok"
    if verdict == "unsatisfiable":
        raise RangeNotSatisfiable(
            f"The range {header!r} lies outside the file's {size} bytes.",
            headers={"Content-Range": f"bytes */{size}"},
            size=size,
        )
    return verdict


def inline_disposition(name: str) -> str:
    """What Starlette's FileResponse sends for `filename=name, content_disposition_type="inline"`."""
    quoted = quote(name)
    if quoted != name:
        return f"inline; filename*=utf-8''{quoted}"
    return f'inline; filename="{name}"'
