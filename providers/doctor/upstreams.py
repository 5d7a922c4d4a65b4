"""The cheapest authenticated GET of each paid upstream: nothing is generated, nothing is spent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from providers.base import ProviderSettings
from providers.doctor.findings import Finding, Probe, Reader, authenticated_get
from providers.pika import DEFAULT_MODEL_PATH
from providers.runway import API_VERSION

PROBE_REQUEST_ID = "00000000-0000-4000-8000-000000000000"
"""A request id no fal queue has: asking for its status costs nothing and shows whether the key passes."""
FAL_NAMESPACES = ("workflows", "comfy")


def _credential(settings: ProviderSettings, scheme: str) -> dict[str, str]:
    return {"Authorization": f"{scheme} {settings.api_key}"} if settings.api_key else {}


def account_probe(path: str, read: Reader, headers: Mapping[str, str] | None = None) -> Probe:
    """A probe reading the account behind a Bearer credential at `path`."""

    async def probe(
        http: httpx.AsyncClient, settings: ProviderSettings, params: Sequence[Mapping[str, Any]]
    ) -> list[Finding]:
        return await authenticated_get(
            http, path, {**_credential(settings, "Bearer"), **(headers or {})}, read
        )

    return probe


suno = account_probe(
    "/api/get_limit",
    lambda body: f"{body['credits_left']} credits left this {body.get('period') or 'period'}",
)
"""suno-api's `GET /api/get_limit`: the account's credits left."""

luma = account_probe("/credits", lambda body: f"credit balance ${float(body['credit_balance']) / 100:,.2f}")
"""Luma's `GET /credits` (lumaai's `credits.get()`): the balance, in USD cents."""

runway = account_probe(
    "/organization", lambda body: f"{int(body['creditBalance']):,} credits", {"X-Runway-Version": API_VERSION}
)
"""Runway's `GET /v1/organization` (runwayml's `organization.retrieve()`): the credit balance."""


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
    return await authenticated_get(
        http, path, _credential(settings, "Key"), lambda body: "credential accepted", accepted_statuses=(404,)
    )
