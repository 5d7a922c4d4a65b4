"""Per-key request rate on the creating endpoints (a fixed one-minute window) and the X-RateLimit headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import RateLimited

WINDOW = 60


@dataclass
class Window:
    start: float
    count: int = 0


class RateLimiter:
    def __init__(self, default_per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.default = default_per_minute
        self.clock = clock
        self._windows: dict[str, Window] = {}

    def _window(self, key_id: str) -> Window:
        now = self.clock()
        start = now - now % WINDOW
        window = self._windows.get(key_id)
        if window is None or window.start != start:
            window = self._windows[key_id] = Window(start)
            if len(self._windows) > 100_000:  # forget idle keys
                self._windows = {k: w for k, w in self._windows.items() if w.start == start}
        return window

    def headers(self, key_id: str, limit: int | None) -> dict[str, str]:
        limit = limit or self.default
        window = self._window(key_id)
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - window.count)),
            "X-RateLimit-Reset": str(int(window.start + WINDOW)),
        }

    def hit(self, key_id: str, limit: int | None) -> dict[str, str]:
        """Count one creating request; 429 `rate_limited` with Retry-After when over the limit."""
        limit = limit or self.default
        window = self._window(key_id)
        if window.count >= limit:
            retry_after = max(1, int(window.start + WINDOW - self.clock()) + 1)
            error = RateLimited(
                f"This key may create {limit} jobs a minute; try again in {retry_after} s.", retry_after
            )
            error.headers.update(self.headers(key_id, limit))
            raise error
        window.count += 1
        return self.headers(key_id, limit)


class RateLimitHeaders:
    """Adds the headers a handler left in `request.state.rate_headers` to whatever response goes out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get("rate_headers")
                if extra:
                    headers = list(message.get("headers", []))
                    present = {name.lower() for name, _ in headers}
                    for name, value in extra.items():
                        if name.lower().encode() not in present:
                            headers.append((name.lower().encode(), value.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
