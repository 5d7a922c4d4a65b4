"""Job leases: which replica drives each unfinished job, renewed while it lives, taken over when it lapses."""

from __future__ import annotations

from gateway.store.db import Database, Tx
from gateway.store.job_records import Job, row_to_job
from gateway.store.records import Row

UNFINISHED_SQL = "status IN ('queued', 'processing')"


async def claim_lapsed(
    db: Database, owner: str, *, now: float, until: float, limit: int = 100, own_too: bool = False
) -> list[Job]:
    """Claim unfinished jobs whose lease lapsed (their replica died or let go), oldest first.

    Each claim raises the job's epoch, which fences off the writes of whoever held it before. Two
    replicas claiming at once cannot both win a job: the lapse is checked again under the row lock.
    `own_too` (at start-up) also takes the jobs still leased to this instance id: a previous life of
    this replica that died before its leases ran out.
    """
    lapsed = "(lease_until < ? OR owner = ?)" if own_too else "lease_until < ?"
    args = (now, owner) if own_too else (now,)
    return await _claim(
        db,
        owner,
        until,
        f"id IN (SELECT id FROM jobs WHERE {UNFINISHED_SQL} AND {lapsed} ORDER BY created_at LIMIT ?)"
        f" AND {lapsed}",
        (*args, limit, *args),
    )


async def claim_all(db: Database, owner: str, *, until: float) -> list[Job]:
    """One process on its own database: every unfinished job is its own at start-up."""
    return await _claim(db, owner, until, "1 = 1", ())


async def _claim(db: Database, owner: str, until: float, where: str, args: tuple[object, ...]) -> list[Job]:
    """Take the unfinished jobs `where` says, raising each one's epoch; oldest first."""

    async def work(tx: Tx) -> list[Job]:
        rows = await tx.all(
            f"WITH claimed AS (SELECT id FROM jobs WHERE {where} AND {UNFINISHED_SQL}{tx.in_id_order})"
            " UPDATE jobs SET owner = ?, epoch = epoch + 1, lease_until = ?"
            f" WHERE id IN (SELECT id FROM claimed) AND {UNFINISHED_SQL} RETURNING *",
            (*args, owner, until),
        )
        return [row_to_job(row) for row in rows]

    return sorted(await db.write(work), key=lambda job: job.created_at)


async def renew(db: Database, owner: str, driving: dict[str, int], *, until: float) -> dict[str, int]:
    """Extend the leases of the jobs this replica drives (id → epoch); those it still holds.

    Only the jobs it drives: a job leased to this instance id but driven by nobody (a previous life
    of the replica) must lapse, so that someone takes it up.
    """
    held: dict[str, int] = {}
    ids = sorted(driving)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))

        async def work(tx: Tx, chunk: list[str] = chunk, marks: str = marks) -> list[Row]:
            return list(
                await tx.all(
                    f"WITH held AS (SELECT id FROM jobs WHERE owner = ? AND {UNFINISHED_SQL}"
                    f" AND id IN ({marks}){tx.in_id_order})"
                    " UPDATE jobs SET lease_until = ? WHERE id IN (SELECT id FROM held) RETURNING id, epoch",
                    (owner, *chunk, until),
                )
            )

        for row in await db.write(work):
            if int(row["epoch"]) == driving[row["id"]]:
                held[row["id"]] = int(row["epoch"])
    return held


async def release(db: Database, owner: str) -> int:
    """Let go of every lease at once (a graceful stop), so other replicas take the jobs over now."""

    async def work(tx: Tx) -> int:
        return await tx.execute(
            f"WITH mine AS (SELECT id FROM jobs WHERE owner = ? AND {UNFINISHED_SQL}{tx.in_id_order})"
            " UPDATE jobs SET lease_until = 0 WHERE id IN (SELECT id FROM mine)",
            (owner,),
        )

    return await db.write(work)
