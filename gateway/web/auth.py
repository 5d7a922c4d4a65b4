"""Authentication: the Bearer check (keys are hashed as store/keys.py says), the admin check, and signed job
stream tokens."""

from __future__ import annotations

import base64
import hmac
import time

from starlette.requests import Request

from gateway.contract.errors import Forbidden, NotFound, Unauthorized
from gateway.contract.parsing import canonical_number
from gateway.store.keys import ApiKey, hash_key


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def require_key(request: Request) -> ApiKey:
    """The caller's active API key, or 401; remembered on the request for the rate-limit headers."""
    plain = bearer(request)
    if plain is None:
        raise Unauthorized()
    key: ApiKey | None = await request.app.state.services.keys.find_active(hash_key(plain))
    if key is None:
        raise Unauthorized("The API key is unknown or revoked.")
    request.state.api_key = key
    return key


def require_admin(request: Request) -> None:
    """Admin endpoints: 404 when no admin token is configured, 401 without a Bearer, 403 with another."""
    configured: str | None = request.app.state.services.settings.admin_token
    if not configured:
        raise NotFound(f"Nothing is served at {request.url.path}.")
    given = bearer(request)
    if given is None:
        raise Unauthorized("This endpoint takes the admin token: Authorization: Bearer <admin token>.")
    if not hmac.compare_digest(given.encode(), configured.encode()):
        raise Forbidden("This endpoint takes the admin token, not an API key.")


# --- stream tokens: `?token=` on an events URL, so a browser's EventSource never holds the API key ---


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def stream_token(secret: bytes, job_id: str, ttl_seconds: int, *, at: float | None = None) -> str:
    expires = int((at if at is not None else time.time()) + ttl_seconds)
    mac = hmac.digest(secret, f"stream:{job_id}:{expires}".encode(), "sha256")
    return f"{expires}.{_b64(mac[:20])}"


def check_stream_token(secret: bytes, job_id: str, token: str) -> bool:
    """True for an unexpired token minted for this very job."""
    expires_text, _, signature = token.partition(".")
    expires = canonical_number(expires_text)  # the very text the signature was made over
    if expires is None or not signature:
        return False
    mac = hmac.digest(secret, f"stream:{job_id}:{expires}".encode(), "sha256")
    # compared as bytes: compare_digest refuses str with characters outside ASCII (a 500 before)
    return hmac.compare_digest(_b64(mac[:20]).encode(), signature.encode()) and expires >= time.time()
