"""PostgreSQL: group commit for progress events. The writes that arrive together go as one statement.

Every running job records a progress event every second or so, and each one was a round trip and a
commit of its own: with thousands of streams, the most frequent thing the database and the event loop
did (py-spy). SQLite's writer already commits whatever is queued as one transaction. This does the same
for PostgreSQL: while one statement is on its way, the writes that arrive meanwhile wait. The next
statement then carries all of them, one row per job, in one transaction.

Nothing about durability changes: a caller learns its event's number only once the statement that
wrote it has committed, and publishes the event only then. One job appears at most once per statement
(a second write of the same job waits for the next one), so its events keep their order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import anyio

from gateway.store.db import Row

# One statement, its parameters: its rows (the store's write with retries on a deadlock).
Run = Callable[[str, Sequence[Any]], Awaitable[list[Row]]]


@dataclass
class _Write:
    job_id: str
    epoch: int | None  # the lease's epoch that must still hold, or None (no lease)
    changes: dict[str, Any]  # column -> value, as stored
    event: str  # the event's JSON, without its number
    at: str
    done: asyncio.Future[int | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@lru_cache(maxsize=64)
def _statement(columns: tuple[str, ...]) -> str:
    """The statement for writes that change `columns`: each row of `$1` (a JSON array) names its job,
    its lease's epoch, its changes (read as a `jobs` row, so each value takes its column's type), its
    event and its time. It returns the number given to each event written; a job that finished, or
    whose lease another replica holds, has no row."""
    sets = "".join(f"{column} = (i.c).{column}, " for column in columns)
    return (
        "WITH input AS (SELECT x->>'job' AS job, (x->>'epoch')::bigint AS epoch, x->>'event' AS event,"
        " x->>'at' AS at, jsonb_populate_record(NULL::jobs, x->'changes') AS c"
        " FROM jsonb_array_elements($1::jsonb) AS x),"
        f" changed AS (UPDATE jobs SET {sets}last_event_id = jobs.last_event_id + 1 FROM input i"
        " WHERE jobs.id = i.job AND jobs.status IN ('queued', 'processing')"
        " AND (i.epoch IS NULL OR jobs.epoch = i.epoch) RETURNING jobs.id, jobs.last_event_id)"
        " INSERT INTO job_events (job_id, seq, data, created_at)"
        " SELECT changed.id, changed.last_event_id, i.event, i.at FROM changed JOIN input i ON i.job = changed.id"
        " RETURNING job_id, seq"
    )


class ProgressWrites:
    """One database's progress writes, sent a statement at a time (writes of the same columns share one)."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._waiting: list[_Write] = []
        self._sender: asyncio.Task[None] | None = None
        self.statements = 0
        """How many statements have carried writes (tests read it)."""

    async def record(
        self, job_id: str, epoch: int | None, changes: dict[str, Any], event: str, at: str
    ) -> int | None:
        """Change the unfinished job and append its event; the event's number, or None when the job
        finished or (with `epoch`) another replica holds it. Shielded: a caller cancelled while its
        write is on its way still learns whether it committed."""
        write = _Write(job_id, epoch, changes, event, at)
        self._waiting.append(write)
        if self._sender is None:  # started on the next turn of the loop: this turn's writes go with it
            self._sender = asyncio.get_running_loop().create_task(self._send())
        with anyio.CancelScope(shield=True):
            seq = await write.done
        return seq

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                shapes: dict[tuple[str, ...], list[_Write]] = {}
                for write in batch:
                    shapes.setdefault(tuple(write.changes), []).append(write)
                await asyncio.gather(*(self._send_one(columns, writes) for columns, writes in shapes.items()))
        finally:
            self._sender = None

    def _next_batch(self) -> list[_Write]:
        """The waiting writes, each job once (a later write of a job stays for the next statement)."""
        batch: list[_Write] = []
        later: list[_Write] = []
        jobs: set[str] = set()
        for write in self._waiting:
            (later if write.job_id in jobs else batch).append(write)
            jobs.add(write.job_id)
        self._waiting = later
        return batch

    async def _send_one(self, columns: tuple[str, ...], writes: list[_Write]) -> None:
        rows = [
            {"job": w.job_id, "epoch": w.epoch, "changes": w.changes, "event": w.event, "at": w.at}
            for w in writes
        ]
        self.statements += 1
        try:
            numbered = await self._run(_statement(columns), [json.dumps(rows)])
        except BaseException as exc:  # every write of the statement failed with it
            for write in writes:
                if not write.done.done():
                    write.done.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        seqs = {row["job_id"]: int(row["seq"]) for row in numbered}
        for write in writes:
            if not write.done.done():
                write.done.set_result(seqs.get(write.job_id))
