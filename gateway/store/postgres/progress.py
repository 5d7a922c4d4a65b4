"""PostgreSQL: each running job's progress events (and its changes that come with no event, such as its
upstream id), and each quiet stream's look at its job's log, sent for many jobs in one statement (see
postgres/batches.py).

Durability is unchanged: a driver learns its event's number once the statement that wrote it has
committed, and publishes the event only then. One job appears at most once per statement (its next
write waits for the next one), so its events keep their order.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg

from gateway.store.postgres.batches import Batches, Failed, Run
from gateway.store.records import Row
from gateway.store.slots_schema import UNFINISHED, counts_locked_first


@dataclass(frozen=True)
class ProgressWrite:
    job_id: str
    epoch: int | None  # the lease's epoch that must still hold, or None (no lease)
    changes: dict[str, Any]  # column -> value, as stored
    event: str | None  # the event's JSON, without its number; None for a change that logs no event
    at: str
    whole: bool = False  # answered with the whole row as changed (a finish), not only the number


# A finish gives back its job's slot: its statement locks those counts first (slots_schema.py).
_FINISH_COUNTS, _COUNTS_TAKEN = counts_locked_first(
    "SELECT j.provider, COALESCE(j.account, '') AS account, j.key_id FROM jobs j"
    " JOIN input i ON j.id = i.job WHERE j.has_slot = 1"
)


@lru_cache(maxsize=64)
def _write_statement(columns: tuple[str, ...], whole: bool, with_event: bool = True) -> str:
    """The statement for writes that change `columns`: each element of `$1` (a JSON array) names its
    job, its lease's epoch, its changes (read as a `jobs` row, so each value takes its column's type),
    its event and its time. It returns, for each event written, its job and number (`job_id`, `seq`),
    or with `whole` the job's row as changed; a job that finished, or whose lease another replica
    holds, has no row. Without `with_event` the writes log no event: each changed job's `job_id`."""
    sets = ", ".join(
        [f"{column} = (i.c).{column}" for column in columns]
        + (["last_event_id = jobs.last_event_id + 1"] if with_event else [])
    )
    head = (
        "WITH input AS (SELECT x->>'job' AS job, (x->>'epoch')::bigint AS epoch, x->>'event' AS event,"
        " x->>'at' AS at, jsonb_populate_record(NULL::jobs, x->'changes') AS c"
        " FROM jsonb_array_elements($1::jsonb) AS x),"
        + (f" {_FINISH_COUNTS}," if whole else "")
        # the rows locked in id order, as a lease renewal locks them (else the two can deadlock)
        + " locked AS (SELECT jobs.id FROM jobs JOIN input i ON jobs.id = i.job"
        + (f" WHERE {_COUNTS_TAKEN}" if whole else "")
        + ' ORDER BY jobs.id COLLATE "C" FOR NO KEY UPDATE OF jobs),'
        f" changed AS (UPDATE jobs SET {sets} FROM input i"
        f" WHERE jobs.id = i.job AND jobs.id IN (SELECT id FROM locked) AND jobs.status IN {UNFINISHED}"
        " AND (i.epoch IS NULL OR jobs.epoch = i.epoch)"
    )
    logged = (
        " INSERT INTO job_events (job_id, seq, data, created_at)"
        " SELECT changed.id, changed.last_event_id, i.event, i.at FROM changed JOIN input i ON i.job = changed.id"
    )
    if not with_event:
        return f"{head} RETURNING jobs.id) SELECT id AS job_id FROM changed"
    if whole:
        return (
            f"{head} RETURNING jobs.*), logged AS ({logged})"
            " SELECT changed.*, changed.id AS job_id, changed.last_event_id AS seq FROM changed"
        )
    return f"{head} RETURNING jobs.id, jobs.last_event_id){logged} RETURNING job_id, seq"


class ProgressWrites:
    """A database's progress writes, group-committed: writes that change the same columns share a statement."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.batches: Batches[ProgressWrite, Row | None] = Batches(self._send, one_per=lambda w: w.job_id)

    async def record(self, write: ProgressWrite) -> int | None:
        """Change the unfinished job and append its event; the event's number, or None when the job
        finished or (with an epoch) another replica holds it."""
        row = await self.batches(write)
        return None if row is None else int(row["seq"])

    async def change(self, write: ProgressWrite) -> bool:
        """Change the unfinished job with no event (`write.event` None); False when the job finished or
        (with an epoch) another replica holds it."""
        return await self.batches(write) is not None

    async def finish(self, write: ProgressWrite) -> Row | None:
        """The same for a job's terminal event (`write.whole`): the job's row as finished, or None."""
        return await self.batches(write)

    async def _send(self, writes: list[ProgressWrite]) -> list[Row | Failed | None]:
        shapes: dict[tuple[tuple[str, ...], bool, bool], list[ProgressWrite]] = {}
        for write in writes:
            shapes.setdefault((tuple(write.changes), write.whole, write.event is not None), []).append(write)
        # Every statement is waited for, whatever another's fate: each is a commit of its own, so a
        # write learns its own statement's answer (a finish that committed is never told it failed),
        # and no job's next write goes out while this one may still be on its way.
        results = await asyncio.gather(
            *(self._send_shape(*shape, w) for shape, w in shapes.items()), return_exceptions=True
        )
        answered: dict[str, Row | Failed] = {}
        for shaped, result in zip(shapes.values(), results, strict=True):
            if isinstance(result, Exception):
                answered.update((write.job_id, Failed(result)) for write in shaped)
            elif isinstance(result, BaseException):
                raise result  # cancelled: the batch's callers hear it (Batches)
            else:
                answered.update(result)
        return [answered.get(write.job_id) for write in writes]

    async def _send_shape(
        self, columns: tuple[str, ...], whole: bool, with_event: bool, writes: list[ProgressWrite]
    ) -> dict[str, Row | Failed]:
        """Each write's answer by its job: its row (none when it changed nothing), or its failure."""
        statement = _write_statement(columns, whole, with_event)
        try:
            return {row["job_id"]: row for row in await self._run(statement, [_input(writes)])}
        except REFUSED_VALUES:
            if len(writes) == 1:
                raise
        # The database refused a value (a NUL in an upstream's text, a number that is not one) and
        # with it the whole statement: each write goes again on its own, so that only its own fails.
        answered: dict[str, Row | Failed] = {}
        for write in writes:
            try:
                answered.update((row["job_id"], row) for row in await self._run(statement, [_input([write])]))
            except Exception as exc:
                answered[write.job_id] = Failed(exc)
        return answered


# A statement refused for what a write carried, not for the database's state or the connection.
REFUSED_VALUES = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


def _input(writes: list[ProgressWrite]) -> str:
    """The writes as a statement's `$1`."""
    return json.dumps(
        [
            {"job": w.job_id, "epoch": w.epoch, "changes": w.changes, "event": w.event, "at": w.at}
            for w in writes
        ]
    )


class EventHeads:
    """Each job's last event number, asked for many jobs at once: a quiet stream's check of whether its
    job's log moved on while the bus said nothing."""

    def __init__(self, read: Run) -> None:
        self._read = read
        self.batches: Batches[str, int] = Batches(self._send)

    async def last(self, job_id: str) -> int:
        """The job's last event number (0 for no such job)."""
        return await self.batches(job_id)

    async def _send(self, job_ids: list[str]) -> list[int]:
        rows = await self._read(
            "SELECT id, last_event_id FROM jobs WHERE id = ANY(?::text[])", [sorted(set(job_ids))]
        )
        heads = {row["id"]: int(row["last_event_id"]) for row in rows}
        return [heads.get(job_id, 0) for job_id in job_ids]
