"""Job leases: which replica drives each unfinished job, renewed while it lives, taken over when it lapses."""

from __future__ import annotations

from gateway.store.db import Database, Tx
from gateway.store.jobs import Job, row_to_job

UNFINISHED_SQL = "status IN ('queued', 'processing')"


async def claim_lapsed(db: Database, owner: str, *, now: float, until: float, limit: int = 100) -> list[Job]:
    """Claim unfinished jobs whose lease lapsed (their replica died or let go), oldest first.

    Each claim raises the job's epoch, which fences off the writes of whoever held it before. Two
    replicas claiming at once cannot both win a job: the lapse is checked again under the row lock.
    """

    async def work(tx: Tx) -> list[Job]:
        rows = await tx.all(
            f"UPDATE jobs SET owner = ?, epoch = epoch + 1, lease_until = ?"
            f" WHERE id IN (SELECT id FROM jobs WHERE {UNFINISHED_SQL} AND lease_until < ?"
            f" ORDER BY created_at LIMIT ?) AND {UNFINISHED_SQL} AND lease_until < ? RETURNING *",
            (owner, until, now, limit, now),
        )
        return [row_to_job(row) for row in rows]

    return sorted(await db.write(work), key=lambda job: job.created_at)


async def claim_all(db: Database, owner: str, *, until: float) -> list[Job]:
    """One process on its own database: every unfinished job is its own at start-up."""

    async def work(tx: Tx) -> list[Job]:
        rows = await tx.all(
            f"UPDATE jobs SET owner = ?, epoch = epoch + 1, lease_until = ? WHERE {UNFINISHED_SQL} RETURNING *",
            (owner, until),
        )
        return [row_to_job(row) for row in rows]

    return sorted(await db.write(work), key=lambda job: job.created_at)


async def renew(db: Database, owner: str, *, until: float) -> dict[str, int]:
    """Extend every lease this replica still holds; the jobs (and their epochs) it still drives."""

    async def work(tx: Tx) -> dict[str, int]:
        rows = await tx.all(
            f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND {UNFINISHED_SQL} RETURNING id, epoch",
            (until, owner),
        )
        return {row["id"]: int(row["epoch"]) for row in rows}

    return await db.write(work)


async def release(db: Database, owner: str) -> int:
    """Let go of every lease at once (a graceful stop), so other replicas take the jobs over now."""

    async def work(tx: Tx) -> int:
        return await tx.execute(
            f"UPDATE jobs SET lease_until = 0 WHERE owner = ? AND {UNFINISHED_SQL}", (owner,)
        )

    return await db.write(work)
