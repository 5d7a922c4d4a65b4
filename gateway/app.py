"""Builds the Starlette app: routes, middleware, and the lifespan that starts and stops the runner."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from gateway import store
from gateway.drain import RETRY_AFTER_SECONDS, Drain
from gateway.jobs import housekeeping
from gateway.jobs.catalog import Catalog
from gateway.jobs.runner import Runner
from gateway.jobs.services import Services
from gateway.limits.keycache import KeyCache
from gateway.limits.ratelimit import MemoryCounter, RateLimiter, StoreCounter, WindowCounter
from gateway.limits.redislimit import RedisCounter
from gateway.metrics import AccessLog, Metrics, metrics_endpoint
from gateway.results.callbacks import Resolve, system_resolve
from gateway.results.files import ResultStore
from gateway.results.webhooks import Webhooks
from gateway.settings import SECRET_NAMES, Settings
from gateway.store import deployment_secrets, shared
from gateway.store import jobs as job_store
from gateway.store import webhooks as delivery_store
from gateway.store.db import Database
from gateway.store.job_records import Job
from gateway.streams.events import EventBus, EventHub
from gateway.streams.keystreams import RevokedKeyStreams
from gateway.streams.openstreams import OpenStreams
from gateway.streams.redisbus import RedisBus
from gateway.upstreams.capacity import Gate
from gateway.upstreams.registry import Registry
from gateway.web.cors import CrossOriginReads
from gateway.web.errors import EXCEPTION_HANDLERS
from gateway.web.job_object import job_object
from gateway.web.openapi import openapi_endpoint
from gateway.web.rateheaders import RateHeadersEverywhere
from gateway.web.routes import (
    account,
    admin,
    console,
    files,
    generate,
    generations,
    health,
    playground,
    providers,
    usage,
)
from providers.base import Sleep

log = logging.getLogger("gateway")

# Without Redis, a stream on one replica learns of another replica's events by reading the log this
# often. Not every second: jobs often report about once a second, and a live event that came just
# after each timeout would cost a read per stream per event (seen on the PostgreSQL bench).
SHARED_POLL_SECONDS = 2.0


async def signing_secrets(settings: Settings, db: Database) -> dict[str, bytes]:
    """The secrets links, stream tokens and webhooks are signed with: on one process its settings (or
    ones generated into its data dir); on a shared database the deployment's, agreed through it, so every
    replica signs alike without an operator copying them by hand."""
    if not db.shared:
        return {name: settings.secret(name) for name in SECRET_NAMES}
    return {
        name: (await deployment_secrets.agree(db, name, getattr(settings, name))).encode()
        for name in SECRET_NAMES
    }


def create_app(
    settings: Settings | None = None, *, upstream_sleep: Sleep | None = None, resolve: Resolve | None = None
) -> Starlette:
    """The gateway; `resolve` replaces the system resolver for callback hosts (tests name their own)."""
    settings = settings or Settings()
    metrics = Metrics()
    # Made before the lifespan runs: the server's signal handler begins the drain (see cli.py).
    drain = Drain(settings.shutdown_grace_seconds)
    retry_ms = settings.sse_retry_ms if settings.sse_retry_ms is not None else RETRY_AFTER_SECONDS * 1000
    streams = OpenStreams(settings.max_streams_per_key, settings.max_streams, drain, metrics, retry_ms)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        drain.attach(asyncio.get_running_loop())
        # Each engine is chosen here, once, from the settings; nothing else asks which one it has.
        db = store.connect(settings)
        await db.open()
        bus = event_bus(settings, db)
        registry = Registry(
            settings,
            lambda name: Gate(db, name),
            sleep=upstream_sleep,
            observer=metrics.observe_upstream,
        )
        metrics.watch_circuits(registry.states)
        signing = await signing_secrets(settings, db)
        results = ResultStore.from_settings(settings, signing["url_signing_key"])
        runner = Runner(db, bus, registry, results, settings, on_finished=[metrics.record_job], drain=drain)
        metrics.instance.labels(
            settings.instance_id,
            "postgresql" if db.shared else "sqlite",
            "redis" if settings.redis_url else "local",
        ).set(1)
        metrics.jobs_driven.set_function(lambda: runner.running)
        svc = Services(
            settings=settings,
            db=db,
            bus=bus,
            catalog=Catalog(settings),
            registry=registry,
            results=results,
            runner=runner,
            stream_secret=signing["stream_token_secret"],
            metrics=metrics,
            keys=KeyCache(db, bus),
            key_streams=RevokedKeyStreams(db, streams),
            drain=drain,
            streams=streams,
            resolve=resolve or system_resolve,
        )
        webhooks = Webhooks(
            db,
            signing["webhook_secret"],
            lambda job: job_object(svc, job),
            allow_private=settings.allow_private_callbacks,
            instance_id=settings.instance_id,
            max_attempts=settings.webhook_max_attempts,
            base_delay=settings.webhook_backoff_seconds,
            resolve=svc.resolve,
        )
        svc.keys.on_changed(svc.key_streams.key_changed)
        app.state.services = svc
        limiter = RateLimiter(settings.default_rate_limit_per_minute, window_counter(settings, db))
        app.state.limiter = limiter
        try:
            async with anyio.create_task_group() as tg:
                runner.attach(tg)
                svc.key_streams.attach(tg)
                tg.start_soon(bus.serve)

                async def deliver(job: Job) -> None:
                    if job.callback_url:
                        tg.start_soon(webhooks.deliver, job)

                async def deliver_strays() -> None:
                    for job_id in await delivery_store.undelivered(db, settings.webhook_max_attempts):
                        if (found := await job_store.get(db, job_id)) is not None:
                            await deliver(found)

                async def sweep() -> None:
                    if deleted := await results.sweep(db):
                        log.info("deleted the results of %d expired jobs", deleted)
                    await shared.forget_windows_before(db, int(time.time()) - 3600)

                runner.on_finished.append(deliver)
                recovered = await runner.recover(starting=True)
                if recovered:
                    log.info("took up %d unfinished jobs", recovered)
                await deliver_strays()
                owner = settings.instance_id
                tg.start_soon(runner.keep_leases)
                tg.start_soon(housekeeping.every, db, "sweep", owner, settings.sweep_interval_seconds, sweep)
                tg.start_soon(housekeeping.every, db, "webhooks", owner, 60.0, deliver_strays)
                yield
                drain.begin()  # already begun on SIGTERM; a shutdown without one drains here
                await runner.wind_down()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                # Each in turn, whatever the one before did: the leases first, the database last; each
                # bounded by the time left before the drain's deadline (at least a second).
                for close in (
                    runner.release,
                    bus.aclose,
                    limiter.aclose,
                    webhooks.aclose,
                    registry.aclose,
                    results.aclose,
                    db.close,
                ):
                    try:
                        with anyio.fail_after(min(10.0, max(1.0, drain.remaining()))):
                            await close()
                    except Exception:
                        log.exception("stopping: %s failed", getattr(close, "__qualname__", close))

    app = Starlette(
        routes=[
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            *health.routes,
            *generate.routes,
            *generations.routes,
            *account.routes,
            *admin.routes,
            *usage.routes,
            *providers.routes,
            *console.routes,
            *files.routes,
            *playground.routes,
        ],
        middleware=[
            Middleware(AccessLog),
            Middleware(RateHeadersEverywhere),
            Middleware(CrossOriginReads, origins=settings.cors_origins),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # /api/balance/ is a JSON 404, not a bodiless redirect
    app.state.metrics = metrics
    app.state.drain = drain
    return app


def event_bus(settings: Settings, db: Database) -> EventBus:
    """Redis when configured; else in-process, polling the log where other replicas may write it."""
    if settings.redis_url:
        return RedisBus(settings.redis_url, settings.redis_prefix, settings.instance_id)
    return EventHub(poll_seconds=SHARED_POLL_SECONDS if db.shared else None)


def window_counter(settings: Settings, db: Database) -> WindowCounter:
    """Redis when configured; else the database where replicas share it; else this process's memory."""
    if settings.redis_url:
        return RedisCounter(settings.redis_url, settings.redis_prefix)
    return StoreCounter(db) if db.shared else MemoryCounter()
