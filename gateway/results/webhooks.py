"""Webhooks: callback URL checks, and signed deliveries of the terminal job object, retried with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from gateway.contract.errors import InvalidRequest
from gateway.contract.parsing import whole_number
from gateway.results import callbacks
from gateway.results.callbacks import Resolve, Target, system_resolve
from gateway.store import webhooks as delivery_store
from gateway.store.db import Database
from gateway.store.job_records import Job

log = logging.getLogger("gateway.webhooks")


async def check_callback_url(url: str, *, allow_private: bool, resolve: Resolve = system_resolve) -> None:
    """400 unless the URL is http(s) to a public address (a host name is resolved and checked now)."""
    await callbacks.check(url, allow_private=allow_private, resolve=resolve)


def pinned(target: Target) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The request aimed at the address just checked, not at whatever the name resolves to a moment
    later (DNS rebinding): the URL with that address, the Host header, and the TLS server name."""
    original = httpx.URL(target.url)
    url = original.copy_with(host=target.addresses[0].split("%")[0])
    extensions: dict[str, Any] = {"sni_hostname": target.host} if original.scheme == "https" else {}
    return url, {"Host": original.netloc.decode("ascii")}, extensions


def signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, tolerance: int = 300) -> bool:
    """What a receiver does: recompute the HMAC over `<t>.<body>` and compare; reject stale stamps."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = whole_number(fields.get("t"))
    if timestamp is None or "v1" not in fields:
        return False
    expected = signature_header(secret, body, timestamp).split("v1=")[1]
    return (
        hmac.compare_digest(expected.encode(), fields["v1"].encode())
        and abs(time.time() - timestamp) <= tolerance
    )


class Webhooks:
    def __init__(
        self,
        db: Database,
        secret: bytes,
        job_object: Callable[[Job], dict[str, Any]],
        *,
        allow_private: bool,
        instance_id: str = "",
        max_attempts: int = 5,
        base_delay: float = 2.0,
        timeout: float = 10.0,
        resolve: Resolve = system_resolve,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.instance_id = instance_id
        self.secret = secret
        self.job_object = job_object
        self.allow_private = allow_private
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.resolve = resolve
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def deliver(self, job: Job) -> bool:
        """POST the terminal job object until a 2xx or the tries run out. Never affects the job."""
        try:
            return await self._deliver(job)
        except Exception:  # a store failure here must not stop the app's task group
            log.exception("webhook for %s: delivery stopped; the housekeeping round tries again", job.id)
            return False

    async def _deliver(self, job: Job) -> bool:
        if not job.callback_url:
            return False
        # One replica delivers each job's webhook; another takes over only if this one dies midway.
        hold = self.max_attempts * (self.timeout + 5) + self.base_delay * 2**self.max_attempts
        if not await delivery_store.claim(
            self.db, job.id, job.callback_url, self.instance_id, hold, self.max_attempts
        ):
            return False
        body = json.dumps(self.job_object(job), separators=(",", ":")).encode()
        for attempt in range(1, self.max_attempts + 1):
            error = await self._attempt(job.callback_url, body)
            await delivery_store.record_attempt(self.db, job.id, error)
            if error is None:
                return True
            log.warning("webhook for %s, attempt %d: %s", job.id, attempt, error)
            if attempt < self.max_attempts:
                await anyio.sleep(self.base_delay * 2 ** (attempt - 1))
        return False

    async def _attempt(self, url: str, body: bytes) -> str | None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "media-gateway-webhooks/1",
            "X-Gateway-Signature": signature_header(self.secret, body, int(time.time())),
        }
        target: httpx.URL | str = url
        extensions: dict[str, Any] = {}
        if not self.allow_private:
            # Resolved again at every try: a name that pointed outside at request time may not now.
            try:
                checked = await callbacks.check(url, allow_private=False, resolve=self.resolve)
            except InvalidRequest as exc:
                return exc.message
            if not checked.addresses:
                return "the callback host does not resolve"
            target, host, extensions = pinned(checked)
            headers.update(host)
        try:
            response = await self.http.post(target, content=body, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        return None if response.is_success else f"answered {response.status_code}"
