"""Operators' reports across keys: tokens and jobs per day, model, key or provider (from the daily
roll-up); jobs of every key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from gateway.store.db import Database
from gateway.store.job_records import UNFINISHED, Job, row_to_job
from gateway.store.records import Row
from gateway.store.usage_schema import BUCKET_COLUMNS, DURATION_BOUNDS

Dimension = Literal["day", "model", "key", "provider"]
DIMENSIONS: tuple[Dimension, ...] = ("day", "model", "key", "provider")
COLUMN: dict[Dimension, str] = {"day": "day", "model": "model", "key": "key_id", "provider": "provider"}
TERMINAL = ("completed", "failed", "canceled")  # in the order the roll-up's columns count them
SUMMED = (
    "debited",
    "refunded",
    "settled",
    "completed",
    "failed",
    "canceled",
    "completed_seconds",
    *BUCKET_COLUMNS,
)

GroupKey = tuple[str, ...]


def p95(buckets: Sequence[int]) -> float | None:
    """The 95th percentile of the completed jobs' durations, estimated from their bucket counts as
    Prometheus's histogram_quantile does (linear within the bucket; the last finite bound beyond)."""
    total = sum(buckets)
    if not total:
        return None
    rank = 0.95 * total
    seen, lower = 0, 0.0
    for count, bound in zip(buckets, DURATION_BOUNDS, strict=False):
        if count and seen + count >= rank:
            return lower + (bound - lower) * (rank - seen) / count
        seen, lower = seen + count, float(bound)
    return float(DURATION_BOUNDS[-1])


def _group(dims: Sequence[Dimension], key: GroupKey, row: Row) -> dict[str, Any]:
    debited, refunded, settled = int(row["debited"]), int(row["refunded"]), int(row["settled"])
    completed = int(row["completed"])
    mean = float(row["completed_seconds"]) / completed if completed else None
    estimate = p95([int(row[c]) for c in BUCKET_COLUMNS])
    return {
        **dict(zip(dims, key, strict=True)),
        "tokens_debited": debited,
        "tokens_refunded": refunded,
        "tokens_settled": settled,
        "tokens_net": debited - refunded - settled,
        "jobs": {status: int(row[status]) for status in TERMINAL},
        "duration_mean_seconds": round(mean, 3) if mean is not None else None,
        "duration_p95_seconds": round(estimate, 3) if estimate is not None else None,
    }


async def usage(
    db: Database, first_day: str, end_day: str, dims: Sequence[Dimension]
) -> list[dict[str, Any]]:
    """Per group of `dims` (none: one group of everything) over the days [first_day, end_day),
    from the daily roll-up: tokens debited, refunded, settled and net (ledger rows by the day they
    were written), finished jobs by status, and the mean and estimated 95th percentile duration of
    the completed ones (jobs by the day they finished)."""
    columns = [COLUMN[d] for d in dims]
    select = "".join(f"{column} AS d{i}, " for i, column in enumerate(columns))
    sums = ", ".join(f"COALESCE(SUM({c}), 0) AS {c}" for c in SUMMED)
    group = f" GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}" if columns else ""
    rows = await db.fetchall(
        f"SELECT {select}{sums} FROM usage_daily WHERE day >= ? AND day < ?{group}", (first_day, end_day)
    )
    groups = []
    for row in rows:
        key = tuple(str(row[f"d{i}"]) for i in range(len(dims)))
        groups.append(_group(dims, key, row))
    return groups


async def jobs_page(
    db: Database,
    *,
    statuses: Sequence[str] = (),
    provider: str | None = None,
    key_id: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """Jobs of every key, newest first, optionally of some statuses, one provider, one key."""
    conditions: list[str] = []
    params: list[Any] = []
    order = "created_at DESC, rowid DESC"
    if statuses:
        unknown = set(statuses) - {*UNFINISHED, *TERMINAL}
        if unknown:
            raise ValueError(f"not a job status: {sorted(unknown)}")
        # Written out, not bound: the planner then sees that the partial index of unfinished jobs
        # holds every match. Those are few, so they are sorted rather than found by walking the
        # creation-time index back through every finished job (seconds at a million jobs).
        conditions.append(f"status IN ({', '.join(repr(s) for s in statuses)})")
        if set(statuses) <= set(UNFINISHED):
            order = "created_at || '' DESC, rowid DESC"  # an expression: no index walks it
    if provider is not None:
        conditions.append("provider = ?")
        params.append(provider)
    if key_id is not None:
        conditions.append("key_id = ?")
        params.append(key_id)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await db.fetchall(
        f"SELECT * FROM jobs{where} ORDER BY {order} LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    total = await db.fetchone(f"SELECT COUNT(*) FROM jobs{where}", params)
    return [row_to_job(r) for r in rows], int(total[0]) if total else 0
