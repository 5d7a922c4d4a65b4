"""The contract's errors: one plain exception type per error code, with the JSON body it renders to."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from gateway.contract.fields import Omittable


class ErrorBody(BaseModel):
    """Every error's JSON body: status, message and code, with extra fields where they help."""

    status: Literal["Error"]
    message: str
    code: str
    required: Omittable[int] = Field(None, description="With insufficient_tokens: the price")
    balance: Omittable[int] = Field(None, description="With insufficient_tokens (and a credit below zero)")
    retry_after: Omittable[int] = Field(None, description="Seconds to wait, as the Retry-After header says")
    option: Omittable[str] = Field(None, description="The option that was refused")
    field: Omittable[str] = Field(None, description="The body field that was refused")
    limit: Omittable[int] = Field(None, description="The limit the request went over")
    style: Omittable[str] = Field(None, description="The style that was refused")
    model: Omittable[str] = Field(None, description="The model the key may not use")
    provider: Omittable[str] = Field(None, description="The provider that is unavailable")
    job_status: str | None = Field(None, description="With already_finished")
    size: Omittable[int] = Field(None, description="The file's size, with range_not_satisfiable")


class ApiError(Exception):
    """An error the client sees as `{"status": "Error", "message", "code", ...extra}`."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "invalid_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"status": "Error", "message": self.message, "code": self.code, **self.extra}


class InvalidRequest(ApiError):
    pass


class UnknownModel(ApiError):
    code = "unknown_model"


class InvalidStyle(ApiError):
    code = "invalid_style"


class InvalidOption(ApiError):
    code = "invalid_option"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "A valid API key is required: Authorization: Bearer <key>.") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ModelNotAllowed(ApiError):
    status_code = 403
    code = "model_not_allowed"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status_code = 405
    code = "method_not_allowed"


class IdempotencyConflict(ApiError):
    status_code = 409
    code = "idempotency_conflict"


class AlreadyFinished(ApiError):
    status_code = 409
    code = "already_finished"


class Expired(ApiError):
    status_code = 410
    code = "expired"


class RangeNotSatisfiable(ApiError):
    status_code = 416
    code = "range_not_satisfiable"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class InsufficientTokens(ApiError):
    status_code = 418
    code = "insufficient_tokens"

    def __init__(self, required: int, balance: int) -> None:
        super().__init__(
            f"This request costs {required} tokens; the balance is {balance}.",
            required=required,
            balance=balance,
        )


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


class TooManyJobs(RateLimited):
    code = "too_many_jobs"


class TooManyStreams(RateLimited):
    code = "too_many_streams"


class ProviderUnavailable(ApiError):
    status_code = 503
    code = "provider_unavailable"


class ShuttingDown(ApiError):
    """The replica is draining (SIGTERM): nothing was created; the same request succeeds on another."""

    status_code = 503
    code = "shutting_down"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "This replica is shutting down; send the request again (another replica will take it).",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
