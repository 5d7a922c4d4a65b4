"""HTTP details every engine answers alike: the Range verdict (and its JSON 416) and Content-Disposition."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from gateway.errors import RangeNotSatisfiable

RANGE_SPEC = re.compile(r"^\s*([0-9]*)\s*-\s*([0-9]*)\s*$")  # ASCII digits (\d takes '٣' too)
BEYOND_ANY_FILE = 2**63


def _position(digits: str) -> int:
    """A byte position; one too long to be any file's (int() of 4 300+ digits raises) is past them all."""
    return int(digits) if len(digits) <= 19 else BEYOND_ANY_FILE


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
        if first and last and _position(last) < _position(first):
            return "ignore"
        if (first and _position(first) < size) or (not first and _position(last) > 0 and size > 0):
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
