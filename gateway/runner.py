"""The runner: drives each job's provider adapter, records its events, mirrors results, refunds, recovers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from gateway.events import Event, EventBus
from gateway.files import MirrorError, ResultStore
from gateway.registry import Registry, Upstream
from gateway.settings import Settings
from gateway.store import jobs as job_store
from gateway.store.db import Database, iso
from gateway.store.jobs import Job
from providers.base import (
    Failed,
    MalformedUpstream,
    Progress,
    Queued,
    Submitted,
    Succeeded,
    Task,
    UpstreamError,
)

log = logging.getLogger("gateway.runner")

OnFinished = Callable[[Job], Awaitable[None]]


class Runner:
    """Owns every running job: a task per job in the app's task group, independent of any client."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        registry: Registry,
        results: ResultStore,
        settings: Settings,
        on_finished: list[OnFinished] | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry
        self.results = results
        self.settings = settings
        self.on_finished = on_finished or []
        self._tg: TaskGroup | None = None
        self._scopes: dict[str, anyio.CancelScope] = {}

    def attach(self, task_group: TaskGroup) -> None:
        self._tg = task_group

    @property
    def running(self) -> int:
        return len(self._scopes)

    def start(self, job: Job) -> None:
        assert self._tg is not None, "the runner is not attached to the app's task group"
        self._tg.start_soon(self._drive, job, name=f"job {job.id}")

    async def recover(self) -> int:
        """Pick up every unfinished job after a restart: re-attach by upstream id, or submit it."""
        unfinished = await job_store.unfinished(self.db)
        for job in unfinished:
            log.info("recovering job %s (%s, upstream id %s)", job.id, job.status, job.upstream_id)
            self.start(job)
        return len(unfinished)

    async def stop_job(self, job: Job) -> bool:
        """Stop following a job (it was cancelled) and ask its upstream to stop; True if upstream did."""
        scope = self._scopes.get(job.id)
        if scope is not None:
            scope.cancel()
        upstream = self.registry.upstream(job.provider)
        if upstream is None or not job.upstream_id:
            return False
        return await self._cancel_upstream(upstream, job.upstream_id)

    # --- one job ---------------------------------------------------------------------------------

    async def _publish(self, event: Event | None) -> None:
        if event is not None:
            await self.bus.publish(event)

    async def _record(self, job: Job, changes: dict[str, Any], event: dict[str, Any] | None) -> None:
        await self._publish(await job_store.record(self.db, job.id, changes, event))

    async def _drive(self, job: Job) -> None:
        scope = anyio.CancelScope()
        self._scopes[job.id] = scope
        try:
            with scope:
                await self._run(job)
        finally:
            del self._scopes[job.id]

    async def _run(self, job: Job) -> None:
        upstream = self.registry.upstream(job.provider)
        if upstream is None:
            await self._fail(job, "The job's provider is no longer configured.", "provider_unavailable")
            return
        model = self.settings.models.get(job.served_model)
        task = Task(
            job_id=job.id,
            model=job.served_model,
            prompt=job.effective_prompt,
            style=job.style,
            style_label=None,
            options=job.options,
            params=model.upstream if model else {},
            upstream_id=job.upstream_id,
        )
        upstream_ids: list[str] = [job.upstream_id] if job.upstream_id else []
        outcome: Succeeded | Failed
        started = time.monotonic()

        async def on_position(position: int) -> None:
            event = {"status": "Queued", "job_id": job.id, "position": position}
            await self._record(job, {}, event)

        try:
            async with upstream.gate.slot(on_position):
                with anyio.fail_after(upstream.deadline):
                    outcome = await self._follow(job, upstream, task, upstream_ids)
        except TimeoutError:
            cancelled = bool(upstream_ids) and await self._cancel_upstream(upstream, upstream_ids[-1])
            outcome = Failed(
                f"The provider did not finish within {upstream.deadline:g} s; the upstream task was "
                + ("cancelled." if cancelled else "not cancelled (the provider could not or would not)."),
                "timeout",
            )
        except MalformedUpstream as exc:
            log.warning("job %s: %s", job.id, exc.message)
            outcome = Failed(exc.message, "upstream_malformed")
        except UpstreamError as exc:
            outcome = Failed(exc.message, "upstream_unavailable" if exc.retryable else "upstream_error")
        except Exception:
            log.exception("job %s: the adapter failed unexpectedly", job.id)
            outcome = Failed("The gateway could not follow the upstream task.", "internal_error")
        if isinstance(outcome, Succeeded):
            upstream.circuit.record_success()
            await self._complete(job, upstream, outcome)
        else:
            if outcome.code in ("upstream_unavailable", "timeout", "internal_error", "upstream_malformed"):
                upstream.circuit.record_failure()
            else:
                upstream.circuit.record_success()  # the upstream answered: it is up, the job was refused
            await self._fail(job, outcome.message, outcome.code)
        log.info("job %s finished in %.1fs: %s", job.id, time.monotonic() - started, type(outcome).__name__)

    async def _follow(
        self, job: Job, upstream: Upstream, task: Task, upstream_ids: list[str]
    ) -> Succeeded | Failed:
        async with aclosing(upstream.adapter.run(task)) as updates:
            async for update in updates:
                if isinstance(update, Submitted):
                    upstream_ids.append(update.upstream_id)
                    await self._record(job, {"upstream_id": update.upstream_id, "status": "processing"}, None)
                elif isinstance(update, Queued):
                    event: dict[str, Any] = {"status": "Queued", "job_id": job.id}
                    if update.position is not None:
                        event["position"] = update.position
                    await self._record(job, {}, event)
                elif isinstance(update, Progress):
                    event = {"status": "Processing", "job_id": job.id}
                    changes: dict[str, Any] = {"status": "processing"}
                    if update.percent is not None:
                        event["progress"] = changes["progress"] = max(0, min(100, update.percent))
                    if update.message:
                        event["message"] = update.message
                    await self._record(job, changes, event)
                else:
                    return update
        return Failed("The provider stopped reporting before the job finished.", "upstream_malformed")

    async def _complete(self, job: Job, upstream: Upstream, result: Succeeded) -> None:
        expires = int(time.time()) + self.settings.result_ttl_seconds
        urls, content_type = result.urls, result.content_type or "application/octet-stream"
        if not upstream.passthrough:
            try:
                urls, content_type = await self.results.mirror(job.id, result.urls, expires)
            except MirrorError as exc:
                await self._fail(job, f"The result could not be stored: {exc}.", "result_unavailable")
                return
        expires_at = iso(datetime.fromtimestamp(expires, UTC))
        event = {
            "status": "Completed",
            "job_id": job.id,
            "url": urls[0],
            "urls": urls,
            "content_type": content_type,
            "expires_at": expires_at,
        }
        changes = {
            "progress": 100,
            "url": urls[0],
            "urls": urls,
            "content_type": content_type,
            "expires_at": expires_at,
        }
        await self._finish(job, "completed", changes, event, refund=False)

    async def _fail(self, job: Job, message: str, code: str) -> None:
        event = {"status": "Error", "job_id": job.id, "message": message, "code": code, "refunded": True}
        await self._finish(job, "failed", {"error": message, "error_code": code}, event, refund=True)

    async def _finish(
        self, job: Job, status: str, changes: dict[str, Any], event: dict[str, Any], *, refund: bool
    ) -> None:
        with anyio.CancelScope(shield=True):
            recorded = await job_store.finish(self.db, job.id, status, changes, event, refund=refund)
            await self._publish(recorded)
        if recorded is not None:
            await self.notify_finished(job.id)

    async def notify_finished(self, job_id: str) -> Job | None:
        """Run the on-finished hooks (metrics, webhooks) with the finished job, and return it."""
        finished = await job_store.get(self.db, job_id)
        if finished is None:
            return None
        for callback in self.on_finished:
            try:
                await callback(finished)
            except Exception:
                log.exception("job %s: an on-finished hook failed", job_id)
        return finished

    async def _cancel_upstream(self, upstream: Upstream, upstream_id: str) -> bool:
        with anyio.move_on_after(15, shield=True):
            try:
                return await upstream.adapter.cancel(upstream_id)
            except UpstreamError as exc:
                log.warning("cancel of %s task %s failed: %s", upstream.name, upstream_id, exc.message)
        return False
