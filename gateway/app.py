"""Builds the Starlette app: routes, middleware, and the lifespan that starts and stops the runner."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from gateway.catalog import Catalog
from gateway.errors import EXCEPTION_HANDLERS
from gateway.events import EventHub
from gateway.files import ResultStore
from gateway.jobs import Services, job_object
from gateway.metrics import AccessLog, Metrics, metrics_endpoint
from gateway.openapi import openapi_endpoint
from gateway.ratelimit import RateLimiter, RateLimitHeaders
from gateway.registry import Registry
from gateway.routes import account, admin, files, generate, generations, health, playground
from gateway.runner import Runner
from gateway.settings import Settings
from gateway.store import jobs as job_store
from gateway.store import webhooks as delivery_store
from gateway.store.db import Database
from gateway.webhooks import Webhooks
from providers.base import Sleep

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None, *, upstream_sleep: Sleep | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_path)
        await db.open()
        hub = EventHub()
        registry = Registry(settings, sleep=upstream_sleep, observer=metrics.observe_upstream)
        results = ResultStore.from_settings(settings)
        runner = Runner(db, hub, registry, results, settings, on_finished=[metrics.record_job])
        svc = Services(
            settings=settings,
            db=db,
            hub=hub,
            catalog=Catalog(settings),
            registry=registry,
            results=results,
            runner=runner,
            stream_secret=settings.secret("stream_token_secret"),
            metrics=metrics,
        )
        webhooks = Webhooks(
            db,
            settings.secret("webhook_secret"),
            lambda job: job_object(svc, job),
            allow_private=settings.allow_private_callbacks,
            max_attempts=settings.webhook_max_attempts,
            base_delay=settings.webhook_backoff_seconds,
        )
        app.state.services = svc
        app.state.limiter = RateLimiter(settings.default_rate_limit_per_minute)
        try:
            async with anyio.create_task_group() as tg:
                runner.attach(tg)
                tg.start_soon(results.sweep_forever, db, settings.sweep_interval_seconds)

                async def deliver(job: job_store.Job) -> None:
                    if job.callback_url:
                        tg.start_soon(webhooks.deliver, job)

                runner.on_finished.append(deliver)
                recovered = await runner.recover()
                for job_id in await delivery_store.undelivered(db):
                    found = await job_store.get(db, job_id)
                    if found is not None:
                        await deliver(found)
                if recovered:
                    log.info("recovered %d unfinished jobs", recovered)
                yield
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await webhooks.aclose()
                await registry.aclose()
                await results.aclose()
                await db.close()

    app = Starlette(
        routes=[
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            *health.routes,
            *generate.routes,
            *generations.routes,
            *account.routes,
            *admin.routes,
            *files.routes,
            *playground.routes,
        ],
        middleware=[Middleware(AccessLog), Middleware(RateLimitHeaders)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # /api/balance/ is a JSON 404, not a bodiless redirect
    app.state.metrics = metrics
    return app
