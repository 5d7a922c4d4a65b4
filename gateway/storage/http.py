"""HTTP details every engine answers alike: the Range verdict (and its JSON 416) and Content-Disposition."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from gateway.contract.errors import RangeNotSatisfiable

Verdict = Literal["ok", "ignore", "unsatisfiable"]

RANGE_SPEC = re.compile(r"^\s*([0-9]*)\s*-\s*([0-9]*)\s*$")  # ASCII digits (\d takes '٣' too)
MAX_DIGITS = 19  # past any file's size; int() of 4 300+ digits would raise
MAX_RANGES = 100  # as Starlette's FileResponse, which serves the ranges this lets through


def range_verdict(header: str, size: int) -> Verdict:
    """`ok`, `ignore` (malformed: RFC 9110 says serve the whole file) or `unsatisfiable` (416).

    `ok` only where every range can be served, so the file response never refuses one itself (it
    would answer in plain text); a mix of servable and unservable ranges is ignored.
    """
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip() or specs.count(",") >= MAX_RANGES:
        return "ignore"
    verdicts: set[Verdict] = set()
    for spec in specs.split(","):
        match = RANGE_SPEC.match(spec)
        if match is None or match.group(1) == match.group(2) == "":
            return "ignore"
        first, last = match.groups()
        if len(first) > MAX_DIGITS or len(last) > MAX_DIGITS:
            return "ignore"
        if first and last and int(last) < int(first):
            return "ignore"
        satisfiable = (first and int(first) < size) or (not first and int(last) > 0 and size > 0)
        verdicts.add("ok" if satisfiable else "unsatisfiable")
    return verdicts.pop() if len(verdicts) == 1 else "ignore"


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
