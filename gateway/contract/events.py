"""A job's events: one model per `status`, and `Event`, their union on `status`.

The runner and the store build events as dicts (one per progress update: the hot path); the tests hold
every event they see to these models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from gateway.contract.fields import Omittable

# The `code` of a job's `Error` event (and its job object's `error_code`): why the job failed.
JOB_ERROR_CODES = (
    "upstream_failed",
    "upstream_error",
    "upstream_unavailable",
    "upstream_malformed",
    "timeout",
    "result_unavailable",
    "submit_uncertain",
    "provider_unavailable",
    "internal_error",
)


class ProcessingStartedEvent(BaseModel):
    """Accepted and paid; always the first event (id 1)."""

    status: Literal["Processing started"]
    job_id: str
    model: str
    cost: int = Field(description="What was debited: the price, or a hold")
    balance: int = Field(description="The balance after the debit")
    served_by: Omittable[str] = Field(None, description="The fallback model serving the job, when one does")


class QueuedEvent(BaseModel):
    """Waiting in the gateway's queue for the provider, or in the provider's own queue."""

    status: Literal["Queued"]
    job_id: str
    position: Omittable[int] = Field(None, description="The job's place in the queue, when known")
    eta_seconds: Omittable[int] = Field(
        None, description="Estimated seconds until the job starts upstream (recent durations)"
    )


class ProcessingEvent(BaseModel):
    """The provider is working; repeated."""

    status: Literal["Processing"]
    job_id: str
    progress: Omittable[Annotated[int, Field(ge=0, le=100)]] = Field(None, description="0–100, when known")
    message: Omittable[str] = Field(None, description="When the provider says something")
    preview_url: Omittable[str] = Field(
        None,
        description="When there is a live preview: a signed, expiring link to the latest preview frame, "
        "or a redirect to an audio stream while it renders.",
    )


class CompletedEvent(BaseModel):
    """Terminal: success."""

    status: Literal["Completed"]
    job_id: str
    url: str = Field(description="The first output")
    urls: list[str] = Field(description="All outputs")
    content_type: str
    expires_at: str = Field(
        description="When the links and the stored result expire", json_schema_extra={"format": "date-time"}
    )
    cost: Omittable[int] = Field(None, description="The final price: the settled one when a hold was taken")


class ErrorEvent(BaseModel):
    """Terminal: the job failed and its price was refunded (the `Error` event)."""

    status: Literal["Error"]
    job_id: str
    message: str
    code: str = Field(
        description="Why the job failed: " + ", ".join(JOB_ERROR_CODES) + ".",
        examples=list(JOB_ERROR_CODES),
    )
    refunded: Literal[True]


class CanceledEvent(BaseModel):
    """Terminal: cancelled by the client and refunded."""

    status: Literal["Canceled"]
    job_id: str
    refunded: Literal[True]


EVENTS: tuple[type[BaseModel], ...] = (
    ProcessingStartedEvent,
    QueuedEvent,
    ProcessingEvent,
    CompletedEvent,
    ErrorEvent,
    CanceledEvent,
)
Event = Annotated[
    ProcessingStartedEvent | QueuedEvent | ProcessingEvent | CompletedEvent | ErrorEvent | CanceledEvent,
    Field(discriminator="status"),
]
EVENT = TypeAdapter(Event)
