"""The Python SDK under its old name: `gateway.client` re-exports `gateway_client` (clients/python/)."""

from __future__ import annotations

from gateway_client import (
    AsyncGateway,
    Conflict,
    Forbidden,
    Gateway,
    GatewayError,
    InsufficientTokens,
    InvalidRequest,
    JobEvent,
    JobFailed,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    ShuttingDown,
    Unauthorized,
)

__all__ = [
    "AsyncGateway",
    "Conflict",
    "Forbidden",
    "Gateway",
    "GatewayError",
    "InsufficientTokens",
    "InvalidRequest",
    "JobEvent",
    "JobFailed",
    "NotFound",
    "ProviderUnavailable",
    "RateLimited",
    "ShuttingDown",
    "Unauthorized",
]
