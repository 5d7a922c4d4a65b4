"""A job as the store keeps it: what it was asked (JobRequest, NewJob), its row (Job), its lease, and what
a finish or a settlement returns."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from gateway.store.event_records import Event
from gateway.store.records import Row

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
