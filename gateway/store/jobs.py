"""Jobs: create with an atomic debit, record progress, finish (with at most one refund), read and page."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gateway.contract.errors import IdempotencyConflict, InsufficientTokens, TooManyJobs
from gateway.events import Event
from gateway.store import events
from gateway.store.db import Database, Row, Tx, iso, now, parse_iso, stamp
from gateway.store.ledger import append_entry
from gateway.store.pg_functions import NEXT_ROUND
from gateway.store.pg_progress import ProgressWrite
from gateway.store.postgres import PostgresDatabase
from gateway.store.slots_schema import counts_locked_first

UNFINISHED = ("queued", "processing")
TERMINAL = ("completed", "failed", "canceled")


@dataclass(frozen=True)
class JobRequest:
    """What a job was asked to do and what it costs: fixed when it is created."""

    key_id: str
    model: str
    served_model: str
    provider: str
    prompt: str
    effective_prompt: str
    style: str | None
    options: dict[str, Any]
    cost: int
    callback_url: str | None = None


@dataclass(frozen=True)
class NewJob(JobRequest):
    extra_first_event: dict[str, Any] = field(default_factory=dict)
    held: bool = False
    """`cost` is a hold (the most the request can cost), settled to what the upstream produced."""


@dataclass(frozen=True, kw_only=True)
class Job(JobRequest):
    """A stored job: its request plus everything that happened to it since."""

    id: str
    status: str
    progress: int | None
    refunded: bool
    url: str | None
    urls: list[str] | None
    content_type: str | None
    error: str | None
    error_code: str | None
    upstream_id: str | None
    last_event_id: int
    created_at: str
    updated_at: str
    completed_at: str | None
    expires_at: str | None
    owner: str | None = None
    epoch: int = 0
    account: str | None = None
    """The upstream account that holds (or held) the job's slot: every call for the job uses it."""
    hold: int | None = None
    """The amount debited at submit when the price settles at completion; None when it stands."""
    started_at: str | None = None
    submit_intent_at: str | None = None
    """When the driver was about to send the job upstream (None: never, or not recorded then)."""

    @property
    def submit_uncertain(self) -> bool:
        """Sent upstream (perhaps) but no upstream id recorded: a blind resubmit could render twice."""
        return self.submit_intent_at is not None and not self.upstream_id

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def lease(self) -> Lease | None:
        return Lease(self.owner, self.epoch) if self.owner else None


@dataclass(frozen=True)
class Lease:
    """A replica's claim to drive a job. Each claim raises the epoch; every write of the driver
    names the epoch it holds, so a replica that lost the job (paused, partitioned) writes nothing."""

    owner: str
    epoch: int


@dataclass(frozen=True)
class Finished:
    """A job's terminal event and the job as that write left it (upstream id included)."""

    event: Event
    job: Job


@dataclass(frozen=True)
class Settlement:
    """The price of what the upstream produced (at most the hold), and the ledger row's note."""

    cost: int
    note: str


@dataclass(frozen=True)
class Idempotency:
    key: str
    body_hash: str


def new_job_id() -> str:
    return "job_" + secrets.token_urlsafe(18)  # 144 random bits


def row_to_job(row: Row) -> Job:
    return Job(
        id=row["id"],
        key_id=row["key_id"],
        model=row["model"],
        served_model=row["served_model"],
        provider=row["provider"],
        prompt=row["prompt"],
        effective_prompt=row["effective_prompt"],
        style=row["style"],
        options=json.loads(row["options"]),
        callback_url=row["callback_url"],
        status=row["status"],
        progress=row["progress"],
        cost=row["cost"],
        refunded=bool(row["refunded"]),
        url=row["url"],
        urls=json.loads(row["urls"]) if row["urls"] else None,
        content_type=row["content_type"],
        error=row["error"],
        error_code=row["error_code"],
        upstream_id=row["upstream_id"],
        last_event_id=row["last_event_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        expires_at=row["expires_at"],
        owner=row["owner"],
        epoch=row["epoch"],
        account=row["account"],
        hold=None if row["hold"] is None else int(row["hold"]),
        started_at=row["started_at"],
        submit_intent_at=row["submit_intent_at"],
    )


async def _get_in(tx: Tx, job_id: str) -> Job:
    row = await tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
    assert row is not None, f"no job {job_id}"
    return row_to_job(row)


async def create(
    db: Database,
    new: NewJob,
    *,
    idempotency: Idempotency | None = None,
    max_concurrent_jobs: int | None = None,
    max_queued_jobs: int | None = None,
    provider_capacity: int | None = None,
    idempotency_ttl_seconds: int = 24 * 3600,
    lease: Lease | None = None,
    lease_seconds: float = 0,
) -> tuple[Job, Event | None]:
    """Debit the price and create the job with its first event, all in one transaction.

    Returns the job and its `Processing started` event; an idempotent replay returns the earlier job
    and None (nothing is debited again). With `lease`, the new job is born claimed by its creator, for
    `lease_seconds` from the moment it is stored (not from the call: a create may wait its turn).
    """
    cutoff = iso(now() - timedelta(seconds=idempotency_ttl_seconds)) if idempotency is not None else None

    async def work(tx: Tx) -> tuple[Job, Event | None]:
        if idempotency is not None:
            # Take the key's row lock first: on PostgreSQL this serialises one key's creates, so the
            # check sees every earlier create with the same Idempotency-Key (SQLite's BEGIN IMMEDIATE
            # serialises every write anyway).
            await tx.execute("UPDATE api_keys SET balance = balance WHERE id = ?", (new.key_id,))
            seen = await tx.one(
                "SELECT body_hash, job_id FROM idempotency WHERE key_id = ? AND idem_key = ? AND created_at > ?",
                (new.key_id, idempotency.key, cutoff),
            )
            if seen is not None:
                if seen["body_hash"] != idempotency.body_hash:
                    raise _reused_idempotency_key()
                return await _get_in(tx, seen["job_id"]), None
        job_id = new_job_id()
        created = stamp()
        # The job first, born with its first event's number, then the debit: the debit takes the key's
        # row lock (the job's foreign key does not), so one key's creates queue for as few round trips
        # as possible, and the count below runs under the lock, where it sees every committed job.
        row = await tx.one(
            "INSERT INTO jobs (id, key_id, model, served_model, provider, prompt, effective_prompt, style,"
            " options, callback_url, status, cost, created_at, updated_at, owner, epoch, lease_until,"
            " last_event_id, hold, queue_round)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, 1, ?, " + _NEXT_ROUND + ")"
            " RETURNING *",
            (
                *_asked(job_id, new),
                created,
                created,
                *_held_by(new, lease, time.time() + lease_seconds),
                new.key_id,
                new.provider,
                new.provider,
            ),
        )
        assert row is not None
        balance = await append_entry(tx, new.key_id, -new.cost, "debit", job_id=job_id)
        if max_concurrent_jobs is not None or max_queued_jobs is not None:
            counts = await tx.one(
                "SELECT COALESCE((SELECT n FROM slots_held_by_key WHERE key_id = ?), 0) AS held,"
                " (SELECT COUNT(*) FROM jobs WHERE key_id = ? AND has_slot = 0"
                " AND status IN ('queued', 'processing')) AS waiting",
                (new.key_id, new.key_id),
            )
            assert counts is not None  # this job is one of the waiting
            if (
                max_concurrent_jobs is not None
                and int(counts["held"]) + int(counts["waiting"]) > max_concurrent_jobs
            ):
                raise _too_many_running(max_concurrent_jobs)
            waiting = int(counts["waiting"])
            if max_queued_jobs is not None and waiting > max_queued_jobs and provider_capacity is not None:
                # A job counts as waiting from its creation until its driver takes a slot: in a burst,
                # most of them will find a free one. Only those beyond the provider's free slots queue.
                held = await tx.one(
                    "SELECT COALESCE(SUM(n), 0) FROM slots_held WHERE provider = ?", (new.provider,)
                )
                waiting -= max(0, provider_capacity - (int(held[0]) if held else 0))
            if max_queued_jobs is not None and waiting > max_queued_jobs:
                raise _too_many_waiting(max_queued_jobs)
        if balance is None:
            current = await tx.one("SELECT balance FROM api_keys WHERE id = ?", (new.key_id,))
            raise InsufficientTokens(new.cost, int(current[0]) if current else 0)
        first = await events.store(tx, job_id, 1, _first_event(job_id, new, balance))
        if idempotency is not None:  # a stale record (past the TTL) is replaced
            await tx.execute(
                "INSERT INTO idempotency (key_id, idem_key, body_hash, job_id, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, idem_key) DO UPDATE SET"
                " body_hash = excluded.body_hash, job_id = excluded.job_id, created_at = excluded.created_at",
                (new.key_id, idempotency.key, idempotency.body_hash, job_id, created),
            )
        return row_to_job(row), first  # as inserted: nothing in it changed since

    if isinstance(db, PostgresDatabase):
        return await _create_in_postgres(
            db,
            new,
            idempotency=idempotency,
            cutoff=cutoff,
            caps=(max_concurrent_jobs, max_queued_jobs, provider_capacity),
            lease=lease,
            lease_seconds=lease_seconds,
        )
    return await db.write(work)


def _first_event(job_id: str, new: NewJob, balance: Any) -> dict[str, Any]:
    """The data of a new job's event 1."""
    return {
        "status": "Processing started",
        "job_id": job_id,
        "model": new.model,
        "cost": new.cost,
        "balance": balance,
        **new.extra_first_event,
    }


def _asked(job_id: str, new: NewJob) -> tuple[Any, ...]:
    """A new job's columns from its request: id to cost, in the order both engines' inserts take them."""
    return (
        job_id,
        new.key_id,
        new.model,
        new.served_model,
        new.provider,
        new.prompt,
        new.effective_prompt,
        new.style,
        json.dumps(new.options),
        new.callback_url,
        new.cost,
    )


def _held_by(new: NewJob, lease: Lease | None, lease_time: float) -> tuple[Any, ...]:
    """Its owner, epoch and lease (born claimed, or not: when it lapses, or on PostgreSQL how long it
    lasts from the insert), and its hold."""
    return (
        lease.owner if lease else None,
        lease.epoch if lease else 0,
        lease_time,
        new.cost if new.held else None,
    )


# Stands for the balance in the first event's JSON until the database knows it (no JSON holds a NUL).
_BALANCE_MARK = "\x00balance\x00"


async def _create_in_postgres(
    db: PostgresDatabase,
    new: NewJob,
    *,
    idempotency: Idempotency | None,
    cutoff: str | None,
    caps: tuple[int | None, int | None, int | None],
    lease: Lease | None,
    lease_seconds: float,
) -> tuple[Job, Event | None]:
    """`create`, run by the database in one round trip (see pg_functions.py)."""
    job_id = new_job_id()
    marked = Event(job_id, 1, _first_event(job_id, new, _BALANCE_MARK)).json()
    mark = json.dumps(_BALANCE_MARK)
    params = (
        *_asked(job_id, new),
        stamp(),
        *_held_by(new, lease, lease_seconds),
        marked,
        mark,
        *caps,
        idempotency.key if idempotency else None,
        idempotency.body_hash if idempotency else None,
        cutoff,
    )
    row = await db.creates(params)
    outcome = row["outcome"]
    if outcome == "created":
        balance = int(row["balance_now"])
        first = Event(job_id, 1, _first_event(job_id, new, balance))
        return row_to_job(json.loads(row["job"])), first.numbered(1, marked.replace(mark, str(balance)))
    if outcome == "replay":
        return row_to_job(json.loads(row["job"])), None
    if outcome == "idempotency_conflict":
        raise _reused_idempotency_key()
    if outcome == "too_many_running":
        raise _too_many_running(caps[0])
    if outcome == "too_many_waiting":
        raise _too_many_waiting(caps[1])
    raise InsufficientTokens(new.cost, int(row["balance_now"]))


def _reused_idempotency_key() -> IdempotencyConflict:
    return IdempotencyConflict("This Idempotency-Key was already used with a different request body.")


def _too_many_running(cap: int | None) -> TooManyJobs:
    return TooManyJobs(f"This key already has {cap} jobs running; wait for one to finish.", retry_after=5)


def _too_many_waiting(cap: int | None) -> TooManyJobs:
    return TooManyJobs(
        f"This key already has {cap} jobs waiting for an upstream slot; wait for some to start.",
        retry_after=5,
    )


_NEXT_ROUND = NEXT_ROUND.format(key="?", provider="?")


def _stored(changes: dict[str, Any]) -> dict[str, Any]:
    """Each changed column's value as stored (a result's URLs are a JSON list in their column)."""
    return {c: json.dumps(v) if c == "urls" and v is not None else v for c, v in changes.items()}


def _assignments(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    stored = _stored(changes)
    return ", ".join(f"{column} = ?" for column in stored), list(stored.values())


def _guard(job_id: str, lease: Lease | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE of every change to an unfinished job: fenced by the lease's epoch when one is held."""
    if lease is None:
        return "id = ? AND status IN ('queued', 'processing')", (job_id,)
    return "id = ? AND status IN ('queued', 'processing') AND epoch = ?", (job_id, lease.epoch)


class NotChanged(Exception):
    """The job finished, or (with a lease) another replica holds it now: nothing was written."""


async def record(
    db: Database,
    job_id: str,
    changes: dict[str, Any],
    event: dict[str, Any] | None = None,
    *,
    lease: Lease | None = None,
) -> Event | None:
    """Update an unfinished job and append its event atomically.

    Raises NotChanged when the job already finished or the lease is no longer this driver's.
    """
    changes = {**changes, "updated_at": stamp()}
    if isinstance(db, PostgresDatabase):  # once or more per job and progress event: group-committed
        epoch = lease.epoch if lease else None
        if event is None:
            if not await db.progress.change(ProgressWrite(job_id, epoch, _stored(changes), None, stamp())):
                raise NotChanged(job_id)
            return None
        unnumbered = Event(job_id, 0, event)
        seq = await db.progress.record(
            ProgressWrite(job_id, epoch, _stored(changes), unnumbered.json(), stamp())
        )
        if seq is None:
            raise NotChanged(job_id)
        return unnumbered.numbered(seq)

    sets, values = _assignments(changes)
    where, guard = _guard(job_id, lease)

    async def work(tx: Tx) -> Event | None:
        if event is None:
            if await tx.execute(f"UPDATE jobs SET {sets} WHERE {where}", (*values, *guard)) == 0:
                raise NotChanged(job_id)
            return None
        # The change and the event's number in one statement: this runs once per progress event.
        row = await tx.one(
            f"UPDATE jobs SET {sets}, last_event_id = last_event_id + 1 WHERE {where} RETURNING last_event_id",
            (*values, *guard),
        )
        if row is None:
            raise NotChanged(job_id)
        return await events.store(tx, job_id, int(row[0]), event)

    return await db.write(work)


async def record_submit_intent(db: Database, job_id: str, *, lease: Lease | None = None) -> None:
    """Note, before the submit request leaves, that the job is being sent upstream: committed first,
    so that recovery can tell a job that may be upstream from one that never was. Fenced like every
    driver write (NotChanged when the job finished or another replica holds it)."""
    await record(db, job_id, {"submit_intent_at": stamp()}, lease=lease)


async def finish(
    db: Database,
    job_id: str,
    status: str,
    changes: dict[str, Any],
    event: dict[str, Any],
    *,
    refund: bool,
    lease: Lease | None = None,
    settle: Settlement | None = None,
) -> Finished | None:
    """Move an unfinished job to a terminal status with its terminal event, refunding when asked;
    the event and the job as it now stands.

    Exactly one caller wins: the runner finishing and a user cancelling race on the status guard,
    and the ledger's unique index allows one refund per job whatever the code does. None for the
    losers (and for a driver whose lease another replica took).

    With `settle` (a completed job debited a hold), the job's cost becomes the settled price (never
    more than the hold) and the rest of the hold goes back as the job's one `settle` ledger row.
    """
    moment = stamp()
    changes = {**changes, "status": status, "updated_at": moment, "completed_at": moment}
    if refund:
        changes["refunded"] = 1
    if settle is not None:
        changes["cost"] = settle.cost
    if isinstance(db, PostgresDatabase) and not refund and settle is None:
        # The common finish, group-committed with the progress events: the counts a finish keeps at
        # commit (usage, slots held) are rows every finish shares, so one commit for many finishes.
        unnumbered = Event(job_id, 0, event)
        row = await db.progress.finish(
            ProgressWrite(
                job_id,
                lease.epoch if lease else None,
                _stored(changes),
                unnumbered.json(),
                moment,
                whole=True,
            )
        )
        if row is None:
            return None
        finished = row_to_job(row)
        return Finished(unnumbered.numbered(finished.last_event_id), finished)

    sets, values = _assignments(changes)
    where, guard = _guard(job_id, lease)
    head, after, counted = (
        ("", "", ())
        if db.dialect == "sqlite"
        else (f"WITH {_JOB_COUNTS} ", f" AND {_JOB_COUNTS_TAKEN}", (job_id,))
    )

    async def work(tx: Tx) -> Finished | None:
        row = await tx.one(
            f"{head}UPDATE jobs SET {sets}, last_event_id = last_event_id + 1 WHERE {where}{after} RETURNING *",
            (*counted, *values, *guard),
        )
        if row is None:
            return None
        if refund and row["cost"]:
            await append_entry(tx, row["key_id"], int(row["cost"]), "refund", job_id=job_id)
        if settle is not None:
            returned = int(row["hold"]) - settle.cost
            if returned < 0:
                raise ValueError(f"job {job_id}: a settled price above the hold")
            await append_entry(tx, row["key_id"], returned, "settle", job_id=job_id, note=settle.note)
        # read back in the same statement: the finish hooks need no further read
        finished = row_to_job(row)
        return Finished(await events.store(tx, job_id, finished.last_event_id, event), finished)

    return await db.write(work)


# On PostgreSQL a refunding or settling finish, a transaction of its own, locks the slot counts it
# gives back first, as every statement does (slots_schema.py).
_JOB_COUNTS, _JOB_COUNTS_TAKEN = counts_locked_first(
    "SELECT provider, COALESCE(account, '') AS account, key_id FROM jobs WHERE id = ? AND has_slot = 1"
)


async def get(db: Database, job_id: str, key_id: str | None = None) -> Job | None:
    if key_id is None:
        row = await db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    else:
        row = await db.fetchone("SELECT * FROM jobs WHERE id = ? AND key_id = ?", (job_id, key_id))
    return row_to_job(row) if row else None


async def page(
    db: Database, key_id: str, *, status: str | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    where, params = "key_id = ?", [key_id]
    if status:
        where += " AND status = ?"
        params.append(status)
    # rowid breaks ties within a second: SQLite's own, a column of that name on PostgreSQL
    rows = await db.fetchall(
        f"SELECT * FROM jobs WHERE {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    total = await db.fetchone(f"SELECT COUNT(*) FROM jobs WHERE {where}", params)
    return [row_to_job(r) for r in rows], int(total[0]) if total else 0


async def unfinished(db: Database) -> list[Job]:
    rows = await db.fetchall(
        "SELECT * FROM jobs WHERE status IN ('queued', 'processing') ORDER BY created_at"
    )
    return [row_to_job(r) for r in rows]


async def count_unfinished(db: Database, key_id: str) -> int:
    row = await db.fetchone(
        "SELECT COUNT(*) FROM jobs WHERE key_id = ? AND status IN ('queued', 'processing')", (key_id,)
    )
    return int(row[0]) if row else 0


async def results_past(db: Database, moment: str) -> list[str]:
    """Completed jobs whose stored results are past their retention and not yet deleted."""
    rows = await db.fetchall(
        "SELECT id FROM jobs WHERE status = 'completed' AND files_deleted = 0 AND expires_at < ?", (moment,)
    )
    return [r["id"] for r in rows]


async def mark_results_deleted(db: Database, job_id: str) -> None:
    async def work(tx: Tx) -> None:
        await tx.execute("UPDATE jobs SET files_deleted = 1 WHERE id = ?", (job_id,))

    await db.write(work)


async def recent_durations(db: Database, model: str, limit: int = 20) -> list[float]:
    """Seconds from upstream slot to completion of the model's latest completed jobs, newest first."""
    rows = await db.fetchall(
        "SELECT started_at, completed_at FROM jobs WHERE served_model = ? AND status = 'completed'"
        " AND started_at IS NOT NULL ORDER BY completed_at DESC LIMIT ?",
        (model, limit),
    )
    durations = []
    for row in rows:
        started, completed = parse_iso(row["started_at"]), parse_iso(row["completed_at"])
        if started is not None and completed is not None:
            durations.append(max(0.0, (completed - started).total_seconds()))
    return durations
