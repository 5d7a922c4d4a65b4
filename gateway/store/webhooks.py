"""Webhook deliveries: one row per job with a callback, who is delivering it, its attempts and outcome."""

from __future__ import annotations

import time
from datetime import timedelta

from gateway.store.db import Database, Tx, iso, now, stamp


async def claim(db: Database, job_id: str, url: str, owner: str, seconds: float, max_attempts: int) -> bool:
    """Take the delivery of a job's webhook: True for exactly one delivery at a time (even two of
    one replica's: the finish hook and the housekeeping round may meet).

    A claim lapses after `seconds` (its replica died mid-delivery), and then another may take it.
    """
    moment = time.time()

    async def work(tx: Tx) -> bool:
        row = await tx.one(
            "INSERT INTO webhook_deliveries (job_id, url, claimed_by, claim_until) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job_id) DO UPDATE SET claimed_by = excluded.claimed_by,"
            " claim_until = excluded.claim_until"
            " WHERE webhook_deliveries.delivered_at IS NULL AND webhook_deliveries.attempts < ?"
            " AND webhook_deliveries.claim_until < ?"
            " RETURNING job_id",
            (job_id, url, owner, moment + seconds, max_attempts, moment),
        )
        return row is not None

    return await db.write(work)


async def record_attempt(db: Database, job_id: str, error: str | None) -> None:
    delivered = stamp() if error is None else None

    async def work(tx: Tx) -> None:
        await tx.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?,"
            " delivered_at = COALESCE(delivered_at, ?) WHERE job_id = ?",
            (error, delivered, job_id),
        )

    await db.write(work)


async def undelivered(db: Database, max_attempts: int, within_seconds: float = 24 * 3600) -> list[str]:
    """Jobs finished in the last `within_seconds` with a callback never delivered whose delivery nobody
    holds (e.g. a replica died). Bounded in time: this runs every minute, not only at start-up."""
    since = iso(now() - timedelta(seconds=within_seconds))
    rows = await db.fetchall(
        "SELECT j.id FROM jobs j LEFT JOIN webhook_deliveries w ON w.job_id = j.id"
        " WHERE j.callback_url IS NOT NULL AND j.completed_at > ?"
        " AND j.status IN ('completed', 'failed', 'canceled')"
        " AND w.delivered_at IS NULL AND COALESCE(w.attempts, 0) < ? AND COALESCE(w.claim_until, 0) < ?",
        (since, max_attempts, time.time()),
    )
    return [r["id"] for r in rows]
