"""The Python SDK: async and sync clients for the gateway, typed events and typed errors.

    from gateway_client import Gateway
    with Gateway("http://127.0.0.1:8000", "gw_...") as gw:
        for event in gw.generate("suno", "an upbeat pop song"):
            print(event.status, event.progress)

`generate()` and `events()` resume by themselves with `Last-Event-ID` when the connection drops.
"""

from gateway_client.async_client import AsyncGateway
from gateway_client.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InsufficientTokens,
    InvalidRequest,
    JobFailed,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    ShuttingDown,
    Unauthorized,
)
from gateway_client.events import JobEvent
from gateway_client.sync_client import Gateway

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
