"""Webhook deliveries: one row per job with a callback, its attempts and whether it was delivered."""

from __future__ import annotations

from gateway.store.db import Database, iso, now


async def begin(db: Database, job_id: str, url: str) -> None:
    await db.write(
        lambda conn: conn.execute(
            "INSERT INTO webhook_deliveries (job_id, url) VALUES (?, ?) ON CONFLICT (job_id) DO NOTHING",
            (job_id, url),
        )
    )


async def record_attempt(db: Database, job_id: str, error: str | None) -> None:
    await db.write(
        lambda conn: conn.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?,"
            " delivered_at = CASE WHEN ? IS NULL THEN ? ELSE delivered_at END WHERE job_id = ?",
            (error, error, iso(now()), job_id),
        )
    )


async def undelivered(db: Database) -> list[str]:
    """Finished jobs with a callback that was never delivered (e.g. the process stopped midway)."""
    rows = await db.fetchall(
        "SELECT j.id FROM jobs j LEFT JOIN webhook_deliveries w ON w.job_id = j.id"
        " WHERE j.callback_url IS NOT NULL AND j.status IN ('completed', 'failed', 'canceled')"
        " AND w.delivered_at IS NULL AND COALESCE(w.attempts, 0) < 5"
    )
    return [r["id"] for r in rows]
