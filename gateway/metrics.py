"""Prometheus metrics and the structured access log (one JSON line per request, key prefix not key)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.store.db import parse_iso
from gateway.store.job_records import Job
from gateway.upstreams.health import RecentCalls

access_log = logging.getLogger("gateway.access")

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CIRCUIT_STATES = ("closed", "half_open", "open", "unconfigured")


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gateway_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.jobs = Counter(
            "gateway_jobs_total", "Finished jobs by provider and status", ["provider", "status"], registry=r
        )
        self.job_duration = Histogram(
            "gateway_job_duration_seconds",
            "Job run time, creation to terminal event",
            ["provider", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.open_streams = Gauge("gateway_open_streams", "Event streams open right now", registry=r)
        self.streams_ended = Counter(
            "gateway_streams_ended_total",
            "Event streams the gateway ended before their job did, by reason",
            # "stalled": the client read nothing within the send timeout; "draining": SIGTERM; "revoked": its key
            ["reason"],
            registry=r,
        )
        self.instance = Gauge(
            "gateway_instance_info",
            "This replica: its instance id and engines (Prometheus sums the other series over replicas)",
            ["instance", "database", "event_bus"],
            registry=r,
        )
        self.jobs_driven = Gauge("gateway_jobs_driven", "Unfinished jobs this replica drives now", registry=r)
        self.asyncio_tasks = Gauge(
            "gateway_asyncio_tasks",
            "asyncio tasks alive in this process (a leak shows as growth)",
            registry=r,
        )
        self.asyncio_tasks.set_function(asyncio_task_count)
        self.tokens_debited = Counter("gateway_tokens_debited_total", "Tokens debited for jobs", registry=r)
        self.tokens_refunded = Counter(
            "gateway_tokens_refunded_total", "Tokens refunded for jobs", registry=r
        )
        self.tokens_settled = Counter(
            "gateway_tokens_settled_total",
            "Tokens of holds given back when a job's price settled to what was produced",
            registry=r,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Upstream HTTP latency",
            ["provider", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Upstream answers that were errors",
            ["provider", "kind"],
            registry=r,
        )

        self.circuit_state = Gauge(
            "gateway_provider_circuit_state",
            "Each provider's circuit on this replica: 1 for the state it is in, 0 for the others",
            ["provider", "state"],
            registry=r,
        )
        self.recent = RecentCalls()

    def watch_circuits(self, states: Callable[[], dict[str, str]]) -> None:
        """Read each provider's circuit state at every scrape."""
        for provider in states():
            for state in CIRCUIT_STATES:
                self.circuit_state.labels(provider, state).set_function(_in_state(states, provider, state))

    def observe_upstream(self, provider: str, method: str, status: int | None, seconds: float) -> None:
        self.recent.observe(provider, status, seconds)
        self.upstream_latency.labels(provider, method).observe(seconds)
        if status is None:
            self.upstream_errors.labels(provider, "connection").inc()
        elif status == 429:
            self.upstream_errors.labels(provider, "rate_limited").inc()
        elif status >= 500:
            self.upstream_errors.labels(provider, "server_error").inc()
        elif status >= 400:
            self.upstream_errors.labels(provider, "client_error").inc()

    async def record_job(self, job: Job) -> None:
        """An on-finished hook: one place counts every terminal job, however it ended."""
        self.jobs.labels(job.provider, job.status).inc()
        created, completed = parse_iso(job.created_at), parse_iso(job.completed_at)
        if created and completed:
            self.job_duration.labels(job.provider, job.status).observe((completed - created).total_seconds())
        if job.refunded:
            self.tokens_refunded.inc(job.cost)
        elif job.hold is not None and job.status == "completed":
            self.tokens_settled.inc(job.hold - job.cost)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def asyncio_task_count() -> float:
    """Read at scrape time, on the event loop; 0 elsewhere (no loop runs in that thread)."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return 0.0


def _in_state(states: Callable[[], dict[str, str]], provider: str, state: str) -> Callable[[], float]:
    return lambda: 1.0 if states().get(provider) == state else 0.0


def route_template(scope: Scope) -> str:
    """The matched route's path template, so metrics are not split per job id.

    Read from the endpoint the router recorded in the scope: matching every route again per request
    cost a regex per route on the hot path.
    """
    app = scope.get("app")
    templates: dict[Any, str] | None = getattr(getattr(app, "state", None), "route_templates", None)
    if templates is None:
        templates = {}
        for route in getattr(getattr(app, "router", None), "routes", []):
            if (endpoint := getattr(route, "endpoint", None)) is not None:
                templates.setdefault(endpoint, str(getattr(route, "path", "?")))
        if app is not None:
            app.state.route_templates = templates
    return templates.get(scope.get("endpoint"), "unmatched")


class AccessLog:
    """What every HTTP response passes through, in one wrapper of `send`: the rate-limit headers a
    handler left in `request.state.rate_headers` go out with it, and when it ends it is counted in the
    metrics and written as one JSON access-log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = scope.get("state", {}).get("rate_headers")
                if extra:
                    message = with_headers(message, extra)
            await send(message)

        try:
            await self.app(scope, receive, edge_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope)
        app_state = getattr(scope.get("app"), "state", None)
        metrics: Metrics | None = getattr(app_state, "metrics", None)
        if metrics is not None:
            metrics.requests.labels(scope["method"], route, str(status)).inc()
        key = scope.get("state", {}).get("api_key")
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "key": getattr(key, "prefix", None),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                    separators=(",", ":"),
                )
            )


def with_headers(message: Message, extra: dict[str, str]) -> Message:
    """A response start with `extra` headers added, where the response has not set them itself."""
    headers = list(message.get("headers", []))
    present = {name.lower() for name, _ in headers}
    for name, value in extra.items():
        if name.lower().encode() not in present:
            headers.append((name.lower().encode(), value.encode()))
    return {**message, "headers": headers}


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return metrics.render()
