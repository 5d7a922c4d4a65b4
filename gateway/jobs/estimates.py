"""Queue ETAs: how long a waiting job is likely to wait, from recent durations of its model."""

from __future__ import annotations

import math
import statistics
import time

from gateway.settings import Settings
from gateway.store import jobs as job_store
from gateway.store.db import Database

DEFAULT_TYPICAL_SECONDS = 60.0
REFRESH_SECONDS = 10.0
"""Recent durations are read again at most this often per model (each waiting job asks every 2 s)."""


class Estimates:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._typical: dict[str, tuple[float, float]] = {}  # model → (seconds, read at)

    async def typical(self, model: str) -> float:
        """The median of the model's last completed jobs (slot to completion); without any, the
        model's or provider's configured `typical_seconds`, else a minute."""
        cached = self._typical.get(model)
        if cached is not None and time.monotonic() - cached[1] < REFRESH_SECONDS:
            return cached[0]
        durations = await job_store.recent_durations(self.db, model)
        seconds = statistics.median(durations) if durations else self._configured(model)
        self._typical[model] = (seconds, time.monotonic())
        return seconds

    def _configured(self, model: str) -> float:
        config = self.settings.models.get(model)
        if config is None:
            return DEFAULT_TYPICAL_SECONDS
        provider = self.settings.providers.get(config.provider)
        configured = config.upstream.get("typical_seconds") or (
            provider.extra.get("typical_seconds") if provider else None
        )
        return float(configured or DEFAULT_TYPICAL_SECONDS)

    async def eta(self, model: str, position: int, capacity: int) -> int | None:
        """Seconds until the job at `position` is likely to start upstream: the slots ahead of it
        free `capacity` at a time, each after a typical duration. None when it cannot be read."""
        try:
            typical = await self.typical(model)
        except Exception:
            return None  # an ETA is a courtesy: the Queued event goes out without it
        return math.ceil(position / max(1, capacity)) * max(1, math.ceil(typical))
