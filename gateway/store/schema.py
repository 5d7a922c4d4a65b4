"""The schema: numbered migrations as fixed SQL files per dialect, and the repeatable step that makes the
stored functions and triggers again from their current source at every start-up.

A migration, once it has run anywhere, never changes: `migrations/NNNN.<dialect>.sql` is its text, read
as it is (migrations/SHA256SUMS holds each file's hash, and a test compares them). A change to the schema is a new
file. A change to a function or a trigger's body is made where it is written (postgres/functions.py,
slots_schema.py, usage_schema.py): the repeatable step, run after the migrations, makes it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from gateway.store import slots_schema, usage_schema

Dialect = Literal["sqlite", "postgresql"]

_FILE = re.compile(r"(\d{4})\.(sqlite|postgresql)\.sql")


def migrations(dialect: Dialect) -> list[str]:
    """Each migration's text, in order: the first is migration 1."""
    found: dict[int, str] = {}
    for entry in resources.files("gateway.store").joinpath("migrations").iterdir():
        name = _FILE.fullmatch(entry.name)
        if name and name[2] == dialect:
            found[int(name[1])] = entry.read_text(encoding="utf-8")
    # a missing number would shift every later migration onto the wrong version
    assert sorted(found) == list(range(1, len(found) + 1)), (
        f"migrations are not numbered 1…n: {sorted(found)}"
    )
    return [found[number] for number in sorted(found)]


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    create: str
    """Its CREATE TRIGGER statement, as it stands."""


def triggers(dialect: Dialect) -> list[Trigger]:
    """The triggers whose source is live: dropped and made again by the repeatable step."""
    return [
        Trigger("usage_from_ledger", "ledger", usage_schema.ledger_trigger(dialect)),
        Trigger("usage_from_finished_job", "jobs", usage_schema.finished_job_trigger(dialect)),
        Trigger("slots_held_kept", "jobs", slots_schema.trigger(dialect)),
    ]
