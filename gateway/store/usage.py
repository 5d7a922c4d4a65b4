"""Operators' reports across keys: tokens and jobs per day, model, key or provider; jobs of every key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from gateway.store.db import Database, Row
from gateway.store.jobs import Job, row_to_job

Dimension = Literal["day", "model", "key", "provider"]
DIMENSIONS: tuple[Dimension, ...] = ("day", "model", "key", "provider")

# Each dimension over a ledger row `l` (with its job `j`, when it has one) and over a finished job `j`.
# A ledger row falls on the day it was written; a job on the day it finished.
LEDGER_SQL: dict[Dimension, str] = {
    "day": "substr(l.created_at, 1, 10)",
    "model": "j.model",
    "key": "l.key_id",
    "provider": "j.provider",
}
JOB_SQL: dict[Dimension, str] = {
    "day": "substr(j.completed_at, 1, 10)",
    "model": "j.model",
    "key": "j.key_id",
    "provider": "j.provider",
}
# julianday() is SQLite's; the schema gives PostgreSQL one of the same name and meaning.
DURATION_SQL = "(julianday(j.completed_at) - julianday(j.created_at)) * 86400.0"
TERMINAL = ("completed", "failed", "canceled")

GroupKey = tuple[str | None, ...]


def _select(columns: Sequence[str]) -> str:
    return "".join(f"{column} AS d{i}, " for i, column in enumerate(columns))


def _group_by(columns: Sequence[str]) -> str:
    return " GROUP BY " + ", ".join(str(i + 1) for i in range(len(columns))) if columns else ""


def _key(row: Row, width: int) -> GroupKey:
    return tuple(row[f"d{i}"] for i in range(width))


async def _tokens(db: Database, dims: Sequence[Dimension], start: str, end: str) -> dict[GroupKey, Row]:
    columns = [LEDGER_SQL[d] for d in dims]
    join = " LEFT JOIN jobs j ON j.id = l.job_id" if {"model", "provider"} & set(dims) else ""
    rows = await db.fetchall(
        f"SELECT {_select(columns)}"
        " COALESCE(SUM(CASE WHEN l.reason = 'debit' THEN -l.delta ELSE 0 END), 0) AS debited,"
        " COALESCE(SUM(CASE WHEN l.reason = 'refund' THEN l.delta ELSE 0 END), 0) AS refunded,"
        " COALESCE(SUM(CASE WHEN l.reason = 'settle' THEN l.delta ELSE 0 END), 0) AS settled"
        f" FROM ledger l{join}"
        " WHERE l.created_at >= ? AND l.created_at < ? AND l.reason IN ('debit', 'refund', 'settle')"
        f"{_group_by(columns)}",
        (start, end),
    )
    return {_key(row, len(dims)): row for row in rows}


async def _jobs(db: Database, dims: Sequence[Dimension], start: str, end: str) -> list[Row]:
    columns = [JOB_SQL[d] for d in dims]
    return await db.fetchall(
        f"SELECT {_select(columns)} j.status AS status, COUNT(*) AS n, AVG({DURATION_SQL}) AS mean"
        " FROM jobs j WHERE j.completed_at >= ? AND j.completed_at < ?"
        " AND j.status IN ('completed', 'failed', 'canceled')"
        f" GROUP BY {', '.join([*(str(i + 1) for i in range(len(columns))), 'status'])}",
        (start, end),
    )


async def _p95(db: Database, dims: Sequence[Dimension], start: str, end: str) -> dict[GroupKey, float]:
    """The nearest-rank 95th percentile of completed jobs' durations, per group, in one statement."""
    columns = [JOB_SQL[d] for d in dims]
    partition = f"PARTITION BY {', '.join(columns)} " if columns else ""
    aliases = "".join(f"d{i}, " for i in range(len(columns)))
    rows = await db.fetchall(
        f"SELECT {aliases}duration FROM (SELECT {_select(columns)} {DURATION_SQL} AS duration,"
        f" ROW_NUMBER() OVER ({partition}ORDER BY {DURATION_SQL}) AS place,"
        f" COUNT(*) OVER ({partition.strip()}) AS n"
        " FROM jobs j WHERE j.completed_at >= ? AND j.completed_at < ? AND j.status = 'completed'"
        ") ranked WHERE place = (95 * n + 99) / 100",
        (start, end),
    )
    return {_key(row, len(dims)): float(row["duration"]) for row in rows}


def _empty(dims: Sequence[Dimension], key: GroupKey) -> dict[str, Any]:
    return {
        **dict(zip(dims, key, strict=True)),
        "tokens_debited": 0,
        "tokens_refunded": 0,
        "tokens_settled": 0,
        "tokens_net": 0,
        "jobs": dict.fromkeys(TERMINAL, 0),
        "duration_mean_seconds": None,
        "duration_p95_seconds": None,
    }


def _order(key: GroupKey) -> tuple[tuple[bool, str], ...]:
    return tuple((part is None, part or "") for part in key)


async def usage(db: Database, start: str, end: str, dims: Sequence[Dimension]) -> list[dict[str, Any]]:
    """Per group of `dims` (none: one group of everything) in [start, end): tokens debited,
    refunded (and settled) and net from the ledger; finished jobs by status; the mean and 95th
    percentile duration, creation to completion, of the completed ones."""
    groups: dict[GroupKey, dict[str, Any]] = {}
    for key, row in (await _tokens(db, dims, start, end)).items():
        group = groups.setdefault(key, _empty(dims, key))
        debited, refunded, settled = int(row["debited"]), int(row["refunded"]), int(row["settled"])
        group.update(
            tokens_debited=debited,
            tokens_refunded=refunded,
            tokens_settled=settled,
            tokens_net=debited - refunded - settled,
        )
    for row in await _jobs(db, dims, start, end):
        key = _key(row, len(dims))
        group = groups.setdefault(key, _empty(dims, key))
        group["jobs"][row["status"]] = int(row["n"])
        if row["status"] == "completed" and row["mean"] is not None:
            group["duration_mean_seconds"] = round(float(row["mean"]), 3)
    for key, p95 in (await _p95(db, dims, start, end)).items():
        groups.setdefault(key, _empty(dims, key))["duration_p95_seconds"] = round(p95, 3)
    return [groups[key] for key in sorted(groups, key=_order)]


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
    if statuses:
        conditions.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    if provider is not None:
        conditions.append("provider = ?")
        params.append(provider)
    if key_id is not None:
        conditions.append("key_id = ?")
        params.append(key_id)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await db.fetchall(
        f"SELECT * FROM jobs{where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    total = await db.fetchone(f"SELECT COUNT(*) FROM jobs{where}", params)
    return [row_to_job(r) for r in rows], int(total[0]) if total else 0
