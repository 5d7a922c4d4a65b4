"""The cheapest authenticated GET of each paid upstream: nothing is generated, nothing is spent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from providers.base import ProviderSettings
from providers.doctor.findings import Finding, authenticated_get
from providers.pika import DEFAULT_MODEL_PATH
from providers.runway import API_VERSION

PROBE_REQUEST_ID = "00000000-0000-4000-8000-000000000000"
"""A request id no fal queue has: asking for its status costs nothing and shows whether the key passes."""
FAL_NAMESPACES = ("workflows", "comfy")


def _bearer(settings: ProviderSettings, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {settings.api_key}"} if settings.api_key else {}


async def suno(
    http: httpx.AsyncClient, settings: ProviderSettings, params: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """suno-api's `GET /api/get_limit`: the account's credits left."""

    def read(body: Any) -> str:
        return f"{body['credits_left']} credits left this {body.get('period') or 'period'}"

    return await authenticated_get(http, "/api/get_limit", _bearer(settings), read)


async def luma(
    http: httpx.AsyncClient, settings: ProviderSettings, params: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """Luma's `GET /credits` (what lumaai's `credits.get()` reads): the balance in USD cents."""

    def read(body: Any) -> str:
        return f"credit balance ${float(body['credit_balance']) / 100:,.2f}"

    return await authenticated_get(http, "/credits", _bearer(settings), read)


async def runway(
    http: httpx.AsyncClient, settings: ProviderSettings, params: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """Runway's `GET /v1/organization` (runwayml's `organization.retrieve()`): the credit balance."""

    def read(body: Any) -> str:
        return f"{int(body['creditBalance']):,} credits"

    headers = {**_bearer(settings), "X-Runway-Version": API_VERSION}
    return await authenticated_get(http, "/organization", headers, read)


def fal_app(model_path: str) -> str:
    """fal-client's rule: `owner/alias` of `owner/alias/sub/path` (`namespace/owner/alias` for some)."""
    parts = model_path.strip("/").split("/")
    return "/".join(parts[: 3 if parts[0] in FAL_NAMESPACES else 2])


async def fal(
    http: httpx.AsyncClient, settings: ProviderSettings, params: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """fal's queue has no account endpoint: the status of a request id that cannot exist answers 404
    past authentication, and 401 before it."""
    model_path = next((str(p["model_path"]) for p in params if p.get("model_path")), DEFAULT_MODEL_PATH)
    path = f"/{fal_app(model_path)}/requests/{PROBE_REQUEST_ID}/status"

    def read(body: Any) -> str:
        return "credential accepted"

    return await authenticated_get(http, path, _bearer(settings, "Key"), read, accepted_statuses=(404,))
