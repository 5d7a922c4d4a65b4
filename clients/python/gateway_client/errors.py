"""The SDK's typed errors: one per contract status, carrying the contract's `code`."""

from __future__ import annotations

from typing import Any

import httpx


class GatewayError(Exception):
    """An error answer from the gateway: `status` (HTTP), `code` (the contract's), `message`, `body`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.code: str = body.get("code", "unknown")
        self.message: str = body.get("message", "")
        super().__init__(f"{status} {self.code}: {self.message}")


class InvalidRequest(GatewayError):
    pass


class Unauthorized(GatewayError):
    pass


class Forbidden(GatewayError):
    pass


class NotFound(GatewayError):
    pass


class Conflict(GatewayError):
    pass


class InsufficientTokens(GatewayError):
    @property
    def required(self) -> int:
        return int(self.body.get("required", 0))

    @property
    def balance(self) -> int:
        return int(self.body.get("balance", 0))


class RateLimited(GatewayError):
    @property
    def retry_after(self) -> int:
        return int(self.body.get("retry_after", 1))


class ProviderUnavailable(GatewayError):
    pass


class ShuttingDown(ProviderUnavailable):
    """503 `shutting_down`: the replica is draining and created nothing; send the request again."""

    @property
    def retry_after(self) -> int:
        return int(self.body.get("retry_after", 1))


class JobFailed(GatewayError):
    """Raised by `run()` when a job ends with `Error` or `Canceled` (it was refunded)."""


BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: NotFound,
    418: InsufficientTokens,
    429: RateLimited,
    503: ProviderUnavailable,
}
BY_CODE: dict[str, type[GatewayError]] = {"shutting_down": ShuttingDown}
# The contract's error codes that stay a plain GatewayError on purpose. The SDK's own requests never
# earn the first four (JSON bodies of its own making, only the contract's methods, no byte ranges), and
# a caller has nothing to branch on for the last: the gateway failed and logged it.
UNTYPED_CODES = frozenset(
    {
        "payload_too_large",
        "unsupported_media_type",
        "method_not_allowed",
        "range_not_satisfiable",
        "internal_error",
    }
)


def error_class(status: int, code: str) -> type[GatewayError]:
    """The typed error for an answer's HTTP status and contract code (GatewayError when untyped)."""
    return BY_CODE.get(code) or BY_STATUS.get(status, GatewayError)


async def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    try:
        body = response.json()
    except ValueError:
        body = {"code": "http_error", "message": response.text[:300]}
    if not isinstance(body, dict):
        body = {"code": "http_error", "message": str(body)[:300]}
    raise error_class(response.status_code, str(body.get("code")))(response.status_code, body)
