"""State that replicas share through the database: provider slots, rate-limit windows, singleton locks."""

from __future__ import annotations

from gateway.store.db import Database, Tx


async def take_slot(db: Database, job_id: str, epoch: int, provider: str, limit: int) -> int:
    """Give the job one of its provider's `limit` in-flight slots: 0 when it holds one, else its place.

    Slots are a flag on the job itself, so a finished job frees its slot with no further write, and a
    job taken over by another replica keeps the slot its upstream task is using. Places are first
    come, first served across all replicas.
    """

    async def work(tx: Tx) -> int:
        # One provider's takers take turns (the upsert holds the lock row until commit on PostgreSQL).
        await tx.execute(
            "INSERT INTO singletons (name, owner, until) VALUES (?, '', 0)"
            " ON CONFLICT (name) DO UPDATE SET until = singletons.until",
            (f"slots:{provider}",),
        )
        # The job, the slots in use and the jobs waiting ahead of it, in one statement: this runs under
        # the provider's lock, so every round trip here is one every other taker waits for.
        job = await tx.one(
            "SELECT j.has_slot,"
            " (SELECT COUNT(*) FROM jobs f WHERE f.provider = ? AND f.has_slot = 1"
            " AND f.status IN ('queued', 'processing')) AS in_flight,"
            " (SELECT COUNT(*) FROM jobs w WHERE w.provider = ? AND w.has_slot = 0"
            " AND w.status IN ('queued', 'processing') AND (w.created_at, w.rowid) < (j.created_at, j.rowid))"
            " AS ahead FROM jobs j WHERE j.id = ?",
            (provider, provider, job_id),
        )
        if job is None or job["has_slot"]:
            return 0
        place = int(job["ahead"]) + 1
        free = limit - int(job["in_flight"])
        if place > free:
            return place - max(free, 0)
        taken = await tx.execute(
            "UPDATE jobs SET has_slot = 1 WHERE id = ? AND epoch = ? AND status IN ('queued', 'processing')",
            (job_id, epoch),
        )
        return 0 if taken else place

    return await db.write(work)


async def slots_in_use(db: Database, provider: str) -> tuple[int, int]:
    """A provider's unfinished jobs holding a slot, and those waiting for one, over every replica."""
    row = await db.fetchone(
        "SELECT COALESCE(SUM(has_slot), 0), COUNT(*) FROM jobs"
        " WHERE provider = ? AND status IN ('queued', 'processing')",
        (provider,),
    )
    holding, unfinished = (int(row[0]), int(row[1])) if row else (0, 0)
    return holding, unfinished - holding


async def count_request(db: Database, key_id: str, window_start: int) -> int:
    """Count one request in a key's rate window; the window's count, this one included."""

    async def work(tx: Tx) -> int:
        row = await tx.one(
            "INSERT INTO rate_windows (key_id, window_start, count) VALUES (?, ?, 1)"
            " ON CONFLICT (key_id, window_start) DO UPDATE SET count = rate_windows.count + 1"
            " RETURNING count",
            (key_id, window_start),
        )
        return int(row[0]) if row else 1

    return await db.write(work)


async def requests_counted(db: Database, key_id: str, window_start: int) -> int:
    row = await db.fetchone(
        "SELECT count FROM rate_windows WHERE key_id = ? AND window_start = ?", (key_id, window_start)
    )
    return int(row[0]) if row else 0


async def forget_windows_before(db: Database, window_start: int) -> None:
    async def work(tx: Tx) -> None:
        await tx.execute("DELETE FROM rate_windows WHERE window_start < ?", (window_start,))

    await db.write(work)


async def hold(db: Database, name: str, owner: str, *, now: float, until: float) -> bool:
    """Hold a named lock until `until` (or renew it): True for one replica at a time."""

    async def work(tx: Tx) -> bool:
        row = await tx.one(
            "INSERT INTO singletons (name, owner, until) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until"
            " WHERE singletons.until < ? OR singletons.owner = excluded.owner RETURNING owner",
            (name, owner, until, now),
        )
        return row is not None

    return await db.write(work)
