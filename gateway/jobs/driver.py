"""Driving one job: submit or re-attach, follow its upstream's updates into events, then complete or fail it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio

from gateway.jobs.estimates import Estimates
from gateway.jobs.settlement import settlement
from gateway.results.files import MirrorError, ResultStore
from gateway.results.previews import Previews
from gateway.settings import Settings
from gateway.store import jobs as job_store
from gateway.store.db import Database, iso
from gateway.store.event_records import Event
from gateway.store.job_records import Job, Settlement
from gateway.store.jobs import NotChanged
from gateway.streams.events import EventBus
from gateway.upstreams.accounts import Account
from gateway.upstreams.registry import Registry, Upstream
from providers.base import (
    Failed,
    FindsSubmitted,
    MalformedUpstream,
    Progress,
    Queued,
    Submitted,
    Submitting,
    SubmitUncertain,
    Succeeded,
    Task,
    UpstreamError,
)

log = logging.getLogger("gateway.runner")

OnFinished = Callable[[Job], Awaitable[None]]
T = TypeVar("T")

SUBMIT_UNCERTAIN = (
    "The gateway could not tell whether the provider received this job (it sent the job, then got"
    " no answer or restarted before recording one), so it refunded it rather than risk a second render."
)


class DriverStopped(Exception):
    """The store failed under a driver: it stops and leaves the job to be taken up again."""


class Driving:
    """What the runner does for one job it holds, from its first submit to its finish (a part of the
    Runner, which owns the state named here and the leases the writes are made under)."""

    db: Database
    bus: EventBus
    registry: Registry
    results: ResultStore
    settings: Settings
    on_finished: list[OnFinished]
    previews: Previews
    estimates: Estimates
    instance_id: str
    _drivers: dict[str, tuple[anyio.CancelScope, int]]
    _submitting: set[str]
    _finished_here: set[str]

    async def _publish(self, event: Event | None) -> None:
        if event is not None:
            await self.bus.publish(event)

    async def _record(self, job: Job, changes: dict[str, Any], event: dict[str, Any] | None) -> None:
        """Raises NotChanged when the job finished meanwhile or this replica no longer holds it, and
        DriverStopped when the store failed (not the job: it must not be failed for that)."""
        await self._publish(
            await self._write(job_store.record(self.db, job.id, changes, event, lease=job.lease))
        )

    @staticmethod
    async def _write(write: Awaitable[T]) -> T:
        """A driver's store write: NotChanged passes through, any other failure is DriverStopped."""
        try:
            return await write
        except NotChanged:
            raise
        except Exception as exc:
            raise DriverStopped(f"recording failed: {type(exc).__name__}: {exc}") from exc

    async def _followed_elsewhere(self, job_id: str, upstream_id: str) -> bool:
        """Whether the replica that took the job over found this very task upstream and follows it."""
        try:
            current = await job_store.get(self.db, job_id)
        except Exception:
            return False
        return current is not None and not current.finished and current.upstream_id == upstream_id

    async def _drive(self, job: Job, scope: anyio.CancelScope) -> None:
        try:
            with scope:
                await self._run(job)
        except NotChanged:
            log.info(
                "job %s: no longer driven on %s (finished elsewhere or taken over)", job.id, self.instance_id
            )
        except DriverStopped as exc:
            # The store failed under the driver: the job is left to lapse, and a replica (this one,
            # after its lease runs out) takes it up again by its upstream id.
            log.error("job %s: %s; left for another driver to take up", job.id, exc)
        except Exception:  # the task's boundary: one job's trouble never stops the replica's runner
            log.exception("job %s: the driver failed; left for another driver to take up", job.id)
        finally:
            if self._drivers.get(job.id, (None,))[0] is scope:
                del self._drivers[job.id]
                self.previews.forget(job.id)
                self._finished_here.discard(job.id)

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
        started = time.monotonic()

        async def on_position(position: int) -> None:
            event: dict[str, Any] = {"status": "Queued", "job_id": job.id, "position": position}
            eta = await self.estimates.eta(job.served_model, position, upstream.capacity)
            if eta is not None:
                event["eta_seconds"] = eta
            await self._record(job, {}, event)

        outcome: Succeeded | Failed | None = None
        # An account that refuses the credential before the upstream took the job is taken out of
        # rotation, and the job goes back to the queue for another account: at most once per account.
        for _ in range(len(upstream.accounts)):
            outcome = await self._attempt(job, upstream, task, upstream_ids, on_position)
            if outcome is not None or not upstream.serving:
                break
        if outcome is None:
            outcome = Failed(
                "Every account of the provider refused its credential; none is left to run the job.",
                "provider_unavailable",
            )
        if isinstance(outcome, Succeeded):
            await self._complete(job, upstream, outcome)
        else:
            await self._fail(job, outcome.message, outcome.code)
        log.info("job %s finished in %.1fs: %s", job.id, time.monotonic() - started, type(outcome).__name__)

    async def _attempt(
        self,
        job: Job,
        upstream: Upstream,
        task: Task,
        upstream_ids: list[str],
        on_position: Callable[[int], Awaitable[None]],
    ) -> Succeeded | Failed | None:
        """One account's go at the job: its outcome, or None when the account refused the credential
        before the upstream took the job (it is out of rotation; the job waits for another)."""
        account: Account | None = None
        outcome: Succeeded | Failed
        try:
            async with upstream.gate.slot(job, upstream.open_accounts, on_position) as name:
                account = upstream.account(name)
                if account is None:
                    return Failed(
                        "The job's upstream account is no longer configured.", "provider_unavailable"
                    )
                job = replace(job, account=account.name)
                with anyio.fail_after(upstream.deadline):
                    outcome = await self._follow(job, account, task, upstream_ids)
        except (NotChanged, DriverStopped):
            raise
        except TimeoutError:
            assert account is not None  # the deadline runs only while the job holds an account's slot
            await self._record(job, {}, None)  # still this replica's job? (else NotChanged: cancel nothing)
            cancelled = bool(upstream_ids) and await self._cancel_upstream(account, upstream_ids[-1])
            outcome = Failed(
                f"The provider did not finish within {upstream.deadline:g} s; the upstream task was "
                + ("cancelled." if cancelled else "not cancelled (the provider could not or would not)."),
                "timeout",
            )
        except MalformedUpstream as exc:
            log.warning("job %s: %s", job.id, exc.message)
            outcome = Failed(exc.message, "upstream_malformed")
        except UpstreamError as exc:
            if exc.account_refused and account is not None:
                account.disable(exc.account_refused)
                if not upstream_ids:  # refused, so surely not taken: its submit intent goes too
                    await upstream.gate.give_back(job)
                    return None
            outcome = Failed(exc.message, "upstream_unavailable" if exc.retryable else "upstream_error")
        except Exception:
            log.exception("job %s: the adapter failed unexpectedly", job.id)
            outcome = Failed("The gateway could not follow the upstream task.", "internal_error")
        if account is not None and (isinstance(outcome, Succeeded) or outcome.code != "submit_uncertain"):
            # (a submit_uncertain says nothing about the upstream's health)
            account.record_outcome(None if isinstance(outcome, Succeeded) else outcome.code)
        return outcome

    async def _follow(
        self, job: Job, account: Account, task: Task, upstream_ids: list[str]
    ) -> Succeeded | Failed:
        """Submit (at most once) or re-attach, then follow the upstream task to its outcome."""
        try:
            if job.submit_uncertain:  # a previous driver sent the job and died before recording its id
                found = await self._find_submitted(job, account, task, upstream_ids)
                if found is None:
                    return Failed(SUBMIT_UNCERTAIN, "submit_uncertain")
                task = found
            try:
                return await self._follow_updates(job, account, task, upstream_ids)
            except SubmitUncertain as exc:  # sent, no answer: resending could make a second task
                log.warning("job %s: %s; looking for the task upstream", job.id, exc.message)
                self._submitting.discard(job.id)
                found = await self._find_submitted(job, account, task, upstream_ids)
                if found is None:
                    return Failed(SUBMIT_UNCERTAIN, "submit_uncertain")
                return await self._follow_updates(job, account, found, upstream_ids)
        finally:
            self._submitting.discard(job.id)

    async def _find_submitted(
        self, job: Job, account: Account, task: Task, upstream_ids: list[str]
    ) -> Task | None:
        """The task re-attached to what the upstream holds for this job, recorded; None when the
        upstream cannot be asked (it lists no tasks) or holds nothing for it."""
        adapter = account.adapter
        found = await adapter.find_submitted(task) if isinstance(adapter, FindsSubmitted) else None
        if found is None:
            log.warning(
                "job %s: sent to %s, but no upstream task can be found for it", job.id, account.provider
            )
            return None
        log.info("job %s: found its upstream task %s on %s", job.id, found, account.provider)
        upstream_ids.append(found)
        await self._record(job, {"upstream_id": found, "status": "processing"}, None)
        return replace(task, upstream_id=found)

    async def _follow_updates(
        self, job: Job, account: Account, task: Task, upstream_ids: list[str]
    ) -> Succeeded | Failed:
        percent: int | None = job.progress
        # `status` is set only while it may still be 'queued': on SQLite a SET of an indexed column
        # rewrites its seven indexes even when the value stays the same (2.5x the cost of the update).
        processing = job.status == "processing"
        async with aclosing(account.adapter.run(task)) as updates:
            async for update in updates:
                if isinstance(update, Submitting):
                    # On the wire from here until its upstream id is recorded (see wind_down), and
                    # durably so before the request leaves: a crash from here on is never resubmitted.
                    self._submitting.add(job.id)
                    await self._write(job_store.record_submit_intent(self.db, job.id, lease=job.lease))
                elif isinstance(update, Submitted):
                    account.answered()
                    upstream_ids.append(update.upstream_id)
                    try:
                        await self._record(
                            job, {"upstream_id": update.upstream_id, "status": "processing"}, None
                        )
                        processing = True
                    except NotChanged:
                        # Cancelled while submitting, or taken over by a replica that did not find this
                        # task upstream: nobody else will ever cancel it, so this driver does.
                        if not await self._followed_elsewhere(job.id, update.upstream_id):
                            await self._cancel_upstream(account, update.upstream_id)
                        raise
                    finally:
                        self._submitting.discard(job.id)
                elif isinstance(update, Queued):
                    event: dict[str, Any] = {"status": "Queued", "job_id": job.id}
                    if update.position is not None:
                        event["position"] = update.position
                    await self._record(job, {}, event)
                elif isinstance(update, Progress):
                    preview_url = await self.previews.link(job.id, update.preview) if update.preview else None
                    if update.percent is None and not update.message and preview_url is None:
                        continue  # a preview frame dropped: too soon after the last one kept
                    event = {"status": "Processing", "job_id": job.id}
                    changes: dict[str, Any] = {} if processing else {"status": "processing"}
                    if update.percent is not None:
                        percent = event["progress"] = changes["progress"] = max(0, min(100, update.percent))
                    elif percent is not None and preview_url is not None:
                        event["progress"] = percent  # a frame alone: with the progress so far
                    if update.message:
                        event["message"] = update.message
                    if preview_url is not None:
                        event["preview_url"] = preview_url
                    await self._record(job, changes, event)
                    processing = True
                else:
                    return update
        return Failed("The provider stopped reporting before the job finished.", "upstream_malformed")

    async def _complete(self, job: Job, upstream: Upstream, result: Succeeded) -> None:
        expires = int(time.time()) + self.settings.result_ttl_seconds
        urls, content_type = result.urls, result.content_type or "application/octet-stream"
        if not upstream.passthrough:
            try:
                urls, content_type = await self.results.mirror(
                    job.id, result.urls, expires, trusted=[url for url in upstream.base_urls if url]
                )
            except MirrorError as exc:
                await self._fail(job, f"The result could not be stored: {exc}.", "result_unavailable")
                return
        expires_at = iso(datetime.fromtimestamp(expires, UTC))
        settle = settlement(self.settings, job, result.produced)
        event = {
            "status": "Completed",
            "job_id": job.id,
            "url": urls[0],
            "urls": urls,
            "content_type": content_type,
            "expires_at": expires_at,
            "cost": settle.cost if settle is not None else job.cost,
        }
        changes = {
            "progress": 100,
            "url": urls[0],
            "urls": urls,
            "content_type": content_type,
            "expires_at": expires_at,
        }
        await self._finish(job, "completed", changes, event, refund=False, settle=settle)

    async def _fail(self, job: Job, message: str, code: str) -> None:
        event = {"status": "Error", "job_id": job.id, "message": message, "code": code, "refunded": True}
        if self.previews.forget(job.id):  # gone before the Error event says the job ended
            await self._discard_previews(job.id)
        await self._finish(job, "failed", {"error": message, "error_code": code}, event, refund=True)

    async def _discard_previews(self, job_id: str) -> None:
        """A job that ends without results keeps no preview either (only completed jobs are swept)."""
        with anyio.CancelScope(shield=True):
            try:
                await self.results.delete(job_id)
            except Exception:
                log.exception("removing the previews of %s failed", job_id)

    async def _finish(
        self,
        job: Job,
        status: str,
        changes: dict[str, Any],
        event: dict[str, Any],
        *,
        refund: bool,
        settle: Settlement | None = None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            # Marked before the write: a renewal that runs once it has committed, and before this
            # driver hears so, leaves the job to it rather than stopping it as finished elsewhere.
            self._finished_here.add(job.id)
            finished = await job_store.finish(
                self.db, job.id, status, changes, event, refund=refund, lease=job.lease, settle=settle
            )
            if (upstream := self.registry.upstream(job.provider)) is not None:
                upstream.gate.freed()  # its slot, if it held one, is free now
            if finished is None:  # fenced off: finished elsewhere, or another replica holds it
                self._finished_here.discard(job.id)
            else:  # shielded too: a renewal that sees the job finished stops this driver
                await self._publish(finished.event)
                await self.notify_finished(finished.job)

    async def notify_finished(self, finished: Job) -> None:
        """Run the on-finished hooks (metrics, webhooks) with the finished job."""
        for callback in self.on_finished:
            try:
                await callback(finished)
            except Exception:
                log.exception("job %s: an on-finished hook failed", finished.id)

    async def _cancel_upstream(self, account: Account, upstream_id: str) -> bool:
        with anyio.move_on_after(15, shield=True):
            try:
                return await account.adapter.cancel(upstream_id)
            except UpstreamError as exc:
                log.warning(
                    "cancel of %s task %s (account %s) failed: %s",
                    account.provider,
                    upstream_id,
                    account.name,
                    exc.message,
                )
        return False
