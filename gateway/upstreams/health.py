"""Each provider's recent upstream calls (error rate, latency) over a sliding window, for the operators' view."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 300.0
# A busy provider's window is cut at this many calls: enough for a stable rate and percentiles.
MAX_CALLS = 2000


@dataclass(frozen=True)
class Recent:
    window_seconds: float
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest rank, as the usage API's p95."""
    rank = max(1, -(-int(share * 100) * len(ordered) // 100))
    return ordered[rank - 1]


class RecentCalls:
    """Upstream HTTP calls per provider in the last `window` seconds: when, how long, whether an error.

    An error is what the circuit and the metrics call one: no answer, 429 or 5xx. A 4xx is the
    request's fault, not the provider's.
    """

    def __init__(self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._calls: dict[str, deque[tuple[float, float, bool]]] = {}

    def observe(self, provider: str, status: int | None, seconds: float) -> None:
        calls = self._calls.setdefault(provider, deque(maxlen=MAX_CALLS))
        calls.append((self.clock(), seconds, status is None or status == 429 or status >= 500))

    def recent(self, provider: str) -> Recent:
        calls = self._calls.get(provider, deque())
        since = self.clock() - self.window
        while calls and calls[0][0] < since:
            calls.popleft()
        errors = sum(1 for _, _, error in calls if error)
        latencies = sorted(seconds * 1000 for _, seconds, _ in calls)
        return Recent(
            window_seconds=self.window,
            requests=len(calls),
            errors=errors,
            error_rate=round(errors / len(calls), 4) if calls else None,
            latency_p50_ms=round(_percentile(latencies, 0.5), 1) if latencies else None,
            latency_p95_ms=round(_percentile(latencies, 0.95), 1) if latencies else None,
        )
