"""Chaos, bounded: a real gateway process on a simulator process, every upstream fault the simulator
offers, streams cut after one or two events, cancels, idempotent retries and a SIGKILL + restart in
the middle; then every key's money must add up and every job must have ended."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN
from tests.e2e.test_restart import Demo
from tests.servers import free_port

pytestmark = pytest.mark.e2e

SPEED = 20  # the simulator's timelines (30–60 s at speed 1) take 1.5–3 s; `sim:slow` ten times that
FUNDS = 2000
KEYS = 3
MODELS = ("suno", "luma", "pika", "run", "local")
# Every fault the simulator offers (providers/simulator/timeline.py, web.py), and none.
DIRECTIVES = ("", "sim:fail", "sim:reject", "sim:429", "sim:throttle", "sim:slow")
TERMINAL = ("completed", "failed", "canceled")


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)

    def __call__(self, what: str, n: int = 1) -> None:
        self.counts[what] += n


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """The upstreams in a process of their own: a gateway killed mid-job finds its tasks still there."""
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "simulator")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "simulator", "--port", str(port), "--speed", str(SPEED)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("the simulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def gateway(tmp_path: Path, simulator: str) -> Iterator[Demo]:
    poll = {f"GATEWAY_PROVIDERS__{name.upper()}__POLL_INTERVAL": "0.1" for name in MODELS}
    running = Demo(
        tmp_path / "gateway",
        simulator_url=simulator,
        env={
            "GATEWAY_ADMIN_TOKEN": ADMIN,
            "GATEWAY_SIMULATOR__SPEED": str(SPEED),
            "GATEWAY_DEFAULT_RATE_LIMIT_PER_MINUTE": "100000",
            "GATEWAY_DEFAULT_MAX_CONCURRENT_JOBS": "1000",
            **poll,
        },
    )
    yield running
    running.stop()


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=20)

    def create(self, body: dict[str, Any], idempotency: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency} if idempotency else {}
        return self.http.post("/api/generations", json=body, headers=headers)

    def stream_cut(self, body: dict[str, Any], events: int) -> str | None:
        """POST /api/generate and hang up after `events` events; the job id, or None if refused."""
        with self.http.stream("POST", "/api/generate", json=body) as response:
            if response.status_code != 200:
                return None
            job_id, seen = None, 0
            for line in response.iter_lines():
                if line.startswith("data: "):
                    job_id = json.loads(line[6:])["job_id"]
                    seen += 1
                    if seen >= events:
                        break
            return job_id

    def jobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.http.get("/api/generations?limit=100").json()["items"]
        return items

    def ledger(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.http.get("/api/ledger?limit=100").json()["items"]
        return items

    def balance(self) -> int:
        balance: int = self.http.get("/api/balance").json()["token_balance"]
        return balance


def new_key(url: str) -> str:
    created = httpx.post(
        url + "/admin/keys",
        json={"name": "chaos", "tokens": FUNDS},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def workload(client: Client, key_index: int, phase: str, tally: Tally) -> dict[str, dict[str, Any]]:
    """One job per model × directive, by turns streamed-and-cut or created idempotently (and retried).
    Returns the idempotent requests, to be retried again after the restart."""
    idempotent: dict[str, dict[str, Any]] = {}
    for n, (model, directive) in enumerate(itertools.product(MODELS, DIRECTIVES)):
        if (n + key_index) % 3:  # a third of the grid per key per phase keeps the run short
            continue
        body = {"model": model, "prompt": f"chaos {phase} {key_index}-{n} {directive}".strip()}
        if n % 2:
            tally("streams cut")
            if client.stream_cut(body, events=1 + n % 2 * (n % 4 == 1)) is None:
                tally("refused (503 circuit open)")
            continue
        idempotency = f"{phase}-{key_index}-{n}"
        first = client.create(body, idempotency)
        if first.status_code == 503:
            tally("refused (503 circuit open)")
            continue
        assert first.status_code == 202, first.text
        again = client.create(body, idempotency)
        tally("idempotent retries")
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
        conflict = client.create({**body, "prompt": body["prompt"] + " changed"}, idempotency)
        assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
        idempotent[idempotency] = {"body": body, "job": first.json()["id"]}
        if directive == "sim:slow" or n % 5 == 0:
            cancel(client, first.json()["id"], tally)
    return idempotent


def cancel(client: Client, job_id: str, tally: Tally) -> None:
    answer = client.http.post(f"/api/generations/{job_id}/cancel")
    assert answer.status_code in (200, 409), answer.text
    tally("cancels" if answer.status_code == 200 else "cancels of finished jobs (409)")


def serving(url: str) -> None:
    """Uvicorn says its startup is complete a moment before it listens."""
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def until_all_finished(clients: list[Client], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(job["status"] in TERMINAL for client in clients for job in client.jobs()):
            return
        time.sleep(0.25)
    raise AssertionError("jobs left unfinished")


def test_chaos_keeps_every_money_invariant(gateway: Demo) -> None:
    started = time.monotonic()
    tally = Tally()
    gateway.start()
    serving(gateway.url)
    clients = [Client(gateway.url, new_key(gateway.url)) for _ in range(KEYS)]
    retries = [workload(client, i, "before", tally) for i, client in enumerate(clients)]

    time.sleep(0.5)  # jobs in every state: submitting, queued, processing, finished
    gateway.kill()
    tally("SIGKILL + restart")
    gateway.start()
    serving(gateway.url)

    for i, client in enumerate(clients):
        for idempotency, request in retries[i].items():  # the same request again, after the crash
            again = client.create(request["body"], idempotency)
            tally("idempotent retries")
            assert again.status_code == 202 and again.json()["id"] == request["job"], again.text
        workload(client, i, "after", tally)
        for job in client.jobs():
            if "sim:slow" in job["prompt"] and job["status"] not in TERMINAL:
                cancel(client, job["id"], tally)
    until_all_finished(clients, within=max(5.0, 55 - (time.monotonic() - started)))

    statuses: Counter[str] = Counter()
    for client in clients:
        jobs = client.jobs()
        ledger = client.ledger()
        balance = client.balance()
        completed_cost = sum(job["cost"] for job in jobs if job["status"] == "completed")
        assert sum(row["delta"] for row in ledger) == balance == FUNDS - completed_cost
        rows_by_job: dict[str, Counter[str]] = {}
        for row in ledger:
            if row["job_id"]:
                rows_by_job.setdefault(row["job_id"], Counter())[row["reason"]] += 1
        for job in jobs:
            statuses[job["status"]] += 1
            rows = rows_by_job.get(job["id"], Counter())
            assert rows["debit"] == 1, (job, rows)
            assert rows["refund"] <= 1, (job, rows)
            assert (rows["refund"] == 1) == (job["status"] in ("failed", "canceled")), (job, rows)
            assert job["refunded"] == (job["status"] in ("failed", "canceled")), job
        assert set(rows_by_job) <= {job["id"] for job in jobs}  # no ledger row for a job nobody has
    tally("jobs", sum(statuses.values()))
    for status, n in statuses.items():
        tally(f"jobs {status}", n)
    print(f"\nchaos: {dict(tally.counts)} in {time.monotonic() - started:.1f} s")
    # The run did what it is for: jobs ended every way, and the crash interrupted some.
    assert statuses["completed"] and statuses["failed"] and statuses["canceled"], statuses
