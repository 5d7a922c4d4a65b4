"""Upstream accounts: each one's adapter (its own credential), circuit, health and recent call record."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.store.records import AccountCap
from gateway.upstreams.circuit import CircuitBreaker
from providers.base import Provider, UpstreamObserver

log = logging.getLogger("gateway.accounts")

Health = Literal["active", "disabled", "probing"]
TRANSIENT_FAILURES = ("upstream_unavailable", "timeout", "internal_error", "upstream_malformed")
"""The failure codes of a job that say the account's upstream is in trouble, not the request."""
RECENT_CALLS = 100
"""The error rate and latency shown for an account are over its last this many upstream calls."""


class CallRecord:
    """An account's last upstream calls: whether each was an error, and how long it took."""

    def __init__(self, size: int = RECENT_CALLS) -> None:
        self._calls: deque[tuple[bool, float]] = deque(maxlen=size)

    def record(self, status: int | None, seconds: float) -> None:
        self._calls.append((status is None or status >= 500 or status in (401, 402, 403, 429), seconds))

    def summary(self) -> dict[str, Any]:
        calls = list(self._calls)
        if not calls:
            return {"calls": 0, "error_rate": None, "latency_ms": None}
        latencies = sorted(seconds for _, seconds in calls)
        return {
            "calls": len(calls),
            "error_rate": round(sum(1 for error, _ in calls if error) / len(calls), 3),
            "latency_ms": round(latencies[len(latencies) // 2] * 1000),  # the median
        }


@dataclass
class AccountHealth:
    """Out of rotation after the provider refused the credential; tried again with growing backoff.

    A disabled account gets one trial job once its backoff ran out (`probing`): the upstream taking
    a job back puts it back in rotation, another refusal doubles the backoff.
    """

    probe_seconds: float
    max_probe_seconds: float
    clock: Callable[[], float] = time.time
    reason: str | None = None
    disabled_at: float | None = None
    next_probe_at: float | None = None
    backoff: float = 0.0

    @property
    def state(self) -> Health:
        if self.next_probe_at is None:
            return "active"
        return "probing" if self.clock() >= self.next_probe_at else "disabled"

    def disable(self, reason: str) -> None:
        now = self.clock()
        self.reason = reason
        if self.next_probe_at is not None and now < self.next_probe_at:
            return  # another job's refusal already took it out: one backoff per trial, not per job
        self.backoff = (
            self.probe_seconds if self.disabled_at is None else min(self.max_probe_seconds, self.backoff * 2)
        )
        self.disabled_at = self.disabled_at or now
        self.next_probe_at = now + self.backoff

    def enable(self) -> bool:
        """Back in rotation; True when it was out of it."""
        was_out = self.next_probe_at is not None
        self.reason = self.disabled_at = self.next_probe_at = None
        self.backoff = 0.0
        return was_out

    def retry_after(self) -> int:
        if self.next_probe_at is None:
            return 0
        return max(1, int(self.next_probe_at - self.clock()) + 1)


@dataclass
class Account:
    """One upstream account of a provider. Its adapter carries its credential (and its host)."""

    provider: str
    name: str
    adapter: Provider
    limit: int
    weight: float
    circuit: CircuitBreaker
    health: AccountHealth
    calls: CallRecord = field(default_factory=CallRecord)
    base_url: str = ""

    @property
    def usable(self) -> bool:
        """May be given a new job: not disabled (a probing one may), circuit not open."""
        return self.health.state != "disabled" and self.circuit.allows()

    @property
    def cap(self) -> AccountCap:
        return AccountCap(self.name, self.limit, self.weight)

    def disable(self, reason: str) -> None:
        self.health.disable(reason)
        log.warning(
            "%s account %s taken out of rotation for %.0f s: %s",
            self.provider,
            self.name,
            self.health.backoff,
            reason,
        )

    def answered(self) -> None:
        """The upstream took a job with this account's credential: it is back in rotation if it was out."""
        if self.health.enable():
            log.info("%s account %s answers again: back in rotation", self.provider, self.name)

    def record_outcome(self, failure_code: str | None) -> None:
        """Count a job's outcome on the account's circuit: only transient failures count against it."""
        if failure_code is None:
            self.answered()
            self.circuit.record_success()
        elif failure_code in TRANSIENT_FAILURES:
            self.circuit.record_failure()
        else:
            self.circuit.record_success()  # the upstream answered: it is up, the job was refused

    def state(self) -> str:
        """`disabled`/`probing` (credential refused), else the circuit's `open`/`half_open`, else `active`."""
        health = self.health.state
        if health != "active":
            return health
        return "active" if self.circuit.state == "closed" else self.circuit.state

    def retry_after(self) -> int:
        """Seconds until this account may take a job again."""
        return max(self.health.retry_after(), self.circuit.retry_after())


def observing(account_calls: CallRecord, observer: UpstreamObserver | None) -> UpstreamObserver:
    """The observer an account's adapter reports to: its own call record, then the gateway's metrics."""

    def observe(provider: str, method: str, status: int | None, seconds: float) -> None:
        account_calls.record(status, seconds)
        if observer is not None:
            observer(provider, method, status, seconds)

    return observe
