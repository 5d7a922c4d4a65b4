"""The runner: drives each job's provider adapter, records its events, mirrors results, refunds, recovers."""

from __future__ import annotations

import logging
import time

import anyio
from anyio.abc import TaskGroup

from gateway.drain import Drain
from gateway.jobs.driver import Driving, OnFinished
from gateway.jobs.estimates import Estimates
from gateway.results.files import ResultStore
from gateway.results.previews import Previews
from gateway.settings import Settings
from gateway.store import leases
from gateway.store.db import Database
from gateway.store.job_records import Job, Lease
from gateway.streams.events import EventBus
from gateway.upstreams.registry import Registry

log = logging.getLogger("gateway.runner")


class Runner(Driving):
    """Drives the jobs this replica holds: a task per job in the app's task group, independent of any client.

    A replica holds a job under a lease (see store/leases.py): born with it when it creates the job,
    or claimed when another replica's lease lapsed. On a shared database the lease is renewed every
    `renew_seconds`; a job whose lease was lost, or that finished elsewhere (cancelled on another
    replica), stops being driven here. Every write names the lease's epoch, so a replica that wakes
    up after losing a job writes nothing more for it.
    """

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        registry: Registry,
        results: ResultStore,
        settings: Settings,
        on_finished: list[OnFinished] | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry
        self.results = results
        self.settings = settings
        self.on_finished = on_finished or []
        self.drain = drain or Drain(settings.shutdown_grace_seconds)
        self.previews = Previews(
            results, every=settings.preview_seconds, ttl_seconds=settings.result_ttl_seconds
        )
        self.instance_id = settings.instance_id
        self.lease_seconds = settings.lease_seconds
        self.renew_seconds = min(1.0, settings.lease_seconds / 3)
        self._tg: TaskGroup | None = None
        self._drivers: dict[str, tuple[anyio.CancelScope, int]] = {}
        self.estimates = Estimates(db, settings)
        self._submitting: set[str] = set()  # jobs whose upstream submit may be on the wire right now
        self._finished_here: set[str] = set()  # finished by their driver here, which still runs its hooks
        self._clock_offset = 0.0  # the database's clock minus this host's, refreshed at each renewal
        bus.on_remote_terminal(self.stop_local)

    def attach(self, task_group: TaskGroup) -> None:
        self._tg = task_group

    @property
    def running(self) -> int:
        return len(self._drivers)

    def now(self) -> float:
        """Now by the database's clock, which every replica's leases are measured by."""
        return time.time() + self._clock_offset

    def new_lease(self) -> tuple[Lease, float]:
        """The lease a job is born with on this replica, and how long it lasts from the job's insert
        unless renewed."""
        return Lease(self.instance_id, 1), self.lease_seconds

    def start(self, job: Job) -> None:
        assert self._tg is not None, "the runner is not attached to the app's task group"
        self.stop_local(job.id)  # re-claimed after a stall: the stale driver is fenced off anyway
        scope = anyio.CancelScope()
        self._drivers[job.id] = (scope, job.epoch)
        self._tg.start_soon(self._drive, job, scope, name=f"job {job.id}")

    def stop_local(self, job_id: str) -> None:
        """Stop driving a job here (it finished elsewhere, or another replica holds it now)."""
        driver = self._drivers.get(job_id)
        if driver is not None:
            log.info("job %s: no longer driven on %s", job_id, self.instance_id)
            driver[0].cancel()

    async def recover(self, *, starting: bool = False) -> int:
        """Take up unfinished jobs: at start-up alone on SQLite every one of them, on a shared
        database those whose lease lapsed (and, starting, those a previous life of this instance
        held). Each is re-attached by upstream id, or submitted."""
        if not self.db.shared:
            claimed = await leases.claim_all(self.db, self.instance_id, until=self.now() + self.lease_seconds)
        else:
            if starting:
                self._clock_offset = await self.db.clock() - time.time()
            now = self.now()
            claimed = await leases.claim_lapsed(
                self.db, self.instance_id, now=now, until=now + self.lease_seconds, own_too=starting
            )
        for job in claimed:
            log.info("taking up job %s (%s, upstream id %s)", job.id, job.status, job.upstream_id)
            self.start(job)
        return len(claimed)

    async def keep_leases(self) -> None:
        """On a shared database: renew this replica's leases, drop the jobs it lost, take over lapsed ones."""
        if not self.db.shared:
            return
        while True:
            await anyio.sleep(self.renew_seconds)
            try:
                self._clock_offset = await self.db.clock() - time.time()
                # Judged on the drivers as they were before the renewal: a job started meanwhile
                # was not asked about, so its absence says nothing.
                driving = {job_id: epoch for job_id, (_, epoch) in self._drivers.items()}
                held = await leases.renew(
                    self.db, self.instance_id, driving, until=self.now() + self.lease_seconds
                )
                for job_id, epoch in driving.items():
                    current = self._drivers.get(job_id)
                    if job_id in held or current is None or current[1] != epoch:
                        continue
                    if job_id in self._finished_here:  # finished here meanwhile: its driver ends itself
                        continue
                    log.info("job %s finished elsewhere or is held by another replica now", job_id)
                    self.stop_local(job_id)
                if not self.drain.draining:  # a leaving replica takes nothing up
                    await self.recover()
            except Exception:
                log.exception("renewing leases failed; trying again")

    async def wind_down(self) -> None:
        """Stop driving every job, leaving each to recovery or to another replica, never failing one.

        A driver whose upstream submit may be on the wire is let finish it and record the upstream id
        (until the drain's deadline, a second kept for the rest of the shutdown): stopped in between,
        the job would be submitted again, or refunded as `submit_uncertain`, because of a deploy.
        """
        deadline = (self.drain.deadline or time.monotonic()) - 1.0
        while True:
            for job_id, (scope, _) in list(self._drivers.items()):
                if job_id not in self._submitting:
                    scope.cancel()
            if not self._submitting or time.monotonic() >= deadline:
                break
            await anyio.sleep(0.05)
        for scope, _ in list(self._drivers.values()):
            scope.cancel()
        if self._submitting:
            log.warning("stopped %d jobs while their upstream submit was in flight", len(self._submitting))

    async def release(self) -> None:
        """A graceful stop: let go of every lease at once, so other replicas take the jobs over now."""
        if self.db.shared:
            released = await leases.release(self.db, self.instance_id)
            if released:
                log.info("handed over %d unfinished jobs", released)

    async def stop_job(self, job: Job) -> bool:
        """Stop following a job (it was cancelled) and ask its upstream to stop; True if upstream did."""
        self.stop_local(job.id)
        if self.previews.forget(job.id):
            await self._discard_previews(job.id)
        upstream = self.registry.upstream(job.provider)
        account = upstream.account(job.account) if upstream is not None else None
        if account is None or not job.upstream_id:
            return False
        return await self._cancel_upstream(account, job.upstream_id)
