"""The response bodies: the job object and its pages, account, models, quote, keys, usage, providers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.config import JsonDict

from gateway.contract.fields import Omittable

JobStatus = Literal["queued", "processing", "completed", "failed", "canceled"]
TIME: JsonDict = {"format": "date-time"}


def Time(description: str = "") -> Any:
    """An ISO-8601 UTC time, as text (`2026-11-23T10:00:00Z`)."""
    return Field(description=description or None, json_schema_extra=TIME)


class Job(BaseModel):
    """The job object: what create, get, list, cancel and the webhooks return."""

    id: str = Field(description="`job_…`")
    model: str = Field(description="The model requested (and priced)")
    prompt: str = Field(description="The prompt as given (trimmed)")
    effective_prompt: str = Field(description="What was sent upstream, the style's suffix included")
    style: str | None
    options: dict[str, Any] = Field(description="The options after validation, defaults filled in")
    status: JobStatus
    progress: int | None = Field(description="0–100, when the provider reports it; 100 when completed")
    cost: int = Field(description="What the job costs: the hold until it settles, then the settled price")
    hold: int | None = Field(
        description="The hold debited at submit when the price settles to what was produced"
    )
    refunded: bool
    url: str | None
    urls: list[str] | None
    content_type: str | None
    error: str | None
    error_code: str | None = Field(description="The Error event's `code`, or `canceled`")
    served_by: str = Field(description="The model that served the job (a fallback's, when one stepped in)")
    created_at: str = Time()
    updated_at: str = Time()
    completed_at: str | None
    expires_at: str | None
    status_url: str
    events_url: str = Field(description="With a fresh stream `?token=` each time the object is made")


class JobPage(BaseModel):
    items: list[Job]
    total: int
    limit: int
    offset: int


class AdminJob(Job):
    """A job object with what only an operator sees: whose it is, where it runs, who drives it."""

    key_id: str
    provider: str
    upstream_id: str | None
    driven_by: str | None


class AdminJobPage(BaseModel):
    items: list[AdminJob]
    total: int
    limit: int
    offset: int


class Balance(BaseModel):
    token_balance: int


class LedgerEntry(BaseModel):
    id: int
    delta: int = Field(description="Tokens added (positive) or taken (negative)")
    reason: Literal["debit", "refund", "credit", "adjust", "settle"]
    job_id: str | None
    balance_after: int
    note: str | None
    created_at: str = Time()


class LedgerPage(BaseModel):
    items: list[LedgerEntry]
    total: int
    limit: int
    offset: int


class Quote(BaseModel):
    model: str
    cost: int = Field(description="What the request is debited at submit")
    hold: bool = Field(description="The cost is a hold, settled to what is produced")
    balance: int
    sufficient: bool
    available: bool


class Style(BaseModel):
    value: str
    label: str


class Model(BaseModel):
    id: str
    kind: Literal["audio", "video", "image"]
    provider: str
    cost: int
    pricing: dict[str, Any] | None
    styles: list[Style]
    options: dict[str, Any] = Field(
        description="The declared options: type, choices, min, max, default, description"
    )
    available: bool


class Models(BaseModel):
    models: list[Model]


class Key(BaseModel):
    """An API key's record (with the plain `key` only in the 201 answer of its creation)."""

    id: str = Field(description="`key_…`")
    key: Omittable[str] = Field(None, description="Only in the 201 answer")
    name: str
    prefix: str
    token_balance: int
    models: list[str] | None
    rate_limit_per_minute: int | None
    max_concurrent_jobs: int | None
    revoked: bool
    revoked_at: str | None
    created_at: str


class Keys(BaseModel):
    items: list[Key]


class KeyBalance(BaseModel):
    """A credit's answer: the key and its new balance."""

    id: str
    token_balance: int


class UsageJobs(BaseModel):
    completed: int
    failed: int
    canceled: int


class UsageGroup(BaseModel):
    """One group: the dimensions asked for in group_by (day, model, key, provider), then the figures."""

    day: Omittable[str] = Field(None, json_schema_extra={"format": "date"})
    model: str | None = None
    key: Omittable[str] = Field(None)
    provider: str | None = None
    tokens_debited: int
    tokens_refunded: int
    tokens_settled: int
    tokens_net: int
    jobs: UsageJobs
    duration_mean_seconds: float | None
    duration_p95_seconds: float | None


class Usage(BaseModel):
    from_: str = Field(alias="from", json_schema_extra=TIME)
    to: str = Time()
    group_by: list[Literal["day", "model", "key", "provider"]]
    groups: list[UsageGroup]
    totals: UsageGroup


class Account(BaseModel):
    name: str
    state: Literal["active", "disabled", "probing", "open", "half_open"]
    reason: str | None
    disabled_at: str | None
    next_probe_at: str | None
    in_flight: int
    cap: int
    weight: float
    calls: int
    error_rate: float | None
    latency_ms: int | None


class ProviderHealth(BaseModel):
    name: str
    configured: bool
    state: Literal["closed", "half_open", "open", "unconfigured"]
    reason: str | None
    retry_after: int | None
    in_flight: int
    cap: int
    queued: int
    models: list[str]
    window_seconds: float
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    accounts: list[Account]


class Providers(BaseModel):
    providers: list[ProviderHealth]
