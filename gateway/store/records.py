"""The plain values the store's operations take and give, besides jobs and events: a result row, a ledger
row's reason, an upstream account's cap and a job's place in its provider's queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# A result row: both engines' rows answer row["column"] and row[0] (sqlite3.Row, asyncpg.Record).
Row = Any

Reason = Literal["debit", "refund", "credit", "adjust", "settle"]


@dataclass(frozen=True)
class AccountCap:
    """An upstream account a job may be given: its cap on jobs in flight and its share of the load."""

    name: str
    limit: int
    weight: float = 1.0


@dataclass(frozen=True)
class Place:
    """0 and the account when the job holds a slot on it; else its place in its provider's queue."""

    position: int
    account: str | None = None
