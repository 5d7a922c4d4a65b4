"""Three `gateway` replicas on one PostgreSQL and one Redis, one simulator, real processes: any replica
serves any stream, a killed or paused driver's jobs are taken over and fenced, limits are shared, money holds."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from bench.cluster import DemoReplica, Simulator
from tests.conftest import ADMIN
from tests.e2e.test_restart import wait_until

# The tests share one cluster and run in this order (the later ones take replicas down): the suite
# runs each test file on one worker (`--dist loadfile` in pyproject.toml).
pytestmark = pytest.mark.e2e
LEASE = 2.0
SPEED = "4"
DEMO = [
    sys.executable,
    "-m",
    "gateway.cli",
    "demo",
]  # a luma video takes 15 s: long enough to kill or pause its driver midway


class Replica(DemoReplica):
    """A replica the tests can read the log of, and pause, kill or stop."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self) -> None:
        if self.alive:
            self.signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        super().stop()


@dataclass
class Cluster:
    replicas: dict[str, Replica]
    simulator: Simulator
    database_url: str
    key: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Replica:
        return self.replicas[name]

    def sql(self, query: str, *args: Any) -> list[Any]:
        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.database_url)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return asyncio.run(run())

    def job(self, replica: str, job_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self[replica].url}/api/generations/{job_id}", headers=self.headers, timeout=10
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def create(self, replica: str, model: str = "luma", prompt: str = "a slow pan over the sea") -> str:
        response = httpx.post(
            f"{self[replica].url}/api/generations",
            json={"model": model, "prompt": prompt},
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    def owner(self, job_id: str) -> tuple[str, int]:
        row = self.sql("SELECT owner, epoch FROM jobs WHERE id = $1", job_id)[0]
        return row["owner"], row["epoch"]


class Stream(threading.Thread):
    """Follows a job's events on one replica in the background, as a client would, until the stream ends."""

    def __init__(self, cluster: Cluster, replica: str, job_id: str, last_event_id: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url = f"{cluster[replica].url}/api/generations/{job_id}/events"
        self.headers = dict(cluster.headers)
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = str(last_event_id)
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.arrived: list[float] = []
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=httpx.Timeout(30, read=60)) as r:
                event_id = 0
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        event_id = int(line[4:])
                    elif line.startswith("data: "):
                        self.events.append((event_id, json.loads(line[6:])))
                        self.arrived.append(time.monotonic())
        except httpx.HTTPError as exc:  # the replica died under us
            self.error = exc

    @property
    def ids(self) -> list[int]:
        return [event_id for event_id, _ in self.events]

    def finish(self, timeout: float = 60) -> Stream:
        self.join(timeout)
        assert not self.is_alive(), "the stream did not end"
        return self


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.conftest import POSTGRES_ADMIN_URL, REDIS_URL, _admin_sql, engine_missing

    workdir = tmp_path_factory.mktemp("replicas")
    name = f"gw_test_{secrets.token_hex(6)}"
    try:
        _admin_sql(f'CREATE DATABASE "{name}"')
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (OSError, asyncpg.PostgresError, redis.RedisError) as exc:
        engine_missing("PostgreSQL and Redis", exc)
    database_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    prefix = f"gw_test_{secrets.token_hex(4)}:"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_STORAGE_URL": (workdir / "results").as_uri(),
        "GATEWAY_LEASE_SECONDS": str(LEASE),
        "GATEWAY_ADMIN_TOKEN": ADMIN,
        "GATEWAY_URL_SIGNING_KEY": "replicas-url-key",
        "GATEWAY_WEBHOOK_SECRET": "replicas-webhook-secret",
        "GATEWAY_STREAM_TOKEN_SECRET": "replicas-stream-secret",
        "GATEWAY_HEARTBEAT_SECONDS": "1",
        "GATEWAY_SIMULATOR__SPEED": SPEED,
        **{f"GATEWAY_PROVIDERS__{p}__POLL_INTERVAL": "0.1" for p in ("SUNO", "LUMA", "PIKA", "RUN", "LOCAL")},
    }
    simulator = Simulator(workdir, SPEED)
    replicas = {name: Replica(name, workdir, env) for name in ("a", "b", "c")}
    try:
        simulator.wait_ready()
        for replica in replicas.values():  # all at once: they migrate the empty database together
            replica.start(simulator.url)
        for replica in replicas.values():
            replica.wait_ready()
        made = httpx.post(
            replicas["a"].url + "/admin/keys",
            json={"name": "replicas", "tokens": 5000, "max_concurrent_jobs": 100},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        yield Cluster(replicas, simulator, database_url, key, {"Authorization": f"Bearer {key}"})
    finally:
        for replica in replicas.values():
            replica.stop()
        simulator.stop()
        with_redis_cleanup(REDIS_URL, prefix)
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_redis_cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for found in client.scan_iter(match=prefix + "*"):
        client.delete(found)


def test_a_job_created_on_a_streams_live_on_b_with_the_same_ids(cluster: Cluster) -> None:
    job_id = cluster.create("a", model="suno", prompt="a sea shanty")
    on_b, on_a = Stream(cluster, "b", job_id), Stream(cluster, "a", job_id)
    on_b.finish(), on_a.finish()
    assert on_b.events == on_a.events  # same ids, same events, wherever they are read
    assert on_b.ids == list(range(1, len(on_b.ids) + 1))
    assert on_b.events[-1][1]["status"] == "Completed"
    # Live, not replayed at the end: B saw the last event within a moment of A's own listener.
    assert abs(on_b.arrived[-1] - on_a.arrived[-1]) < 1.0
    download = httpx.get(on_b.events[-1][1]["url"], timeout=10)  # results stored once, served by any
    assert download.status_code == 200 and download.headers["content-type"].startswith("audio/")


def test_cancel_on_c_stops_the_driver_on_a_refunds_once_and_cancels_upstream(cluster: Cluster) -> None:
    job_id = cluster.create("a")
    wait_until(lambda: cluster.job("b", job_id)["status"] == "processing", timeout=30)
    assert cluster.owner(job_id)[0] == "a"
    cancelled = httpx.post(f"{cluster['c'].url}/api/generations/{job_id}/cancel", headers=cluster.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "canceled" and cancelled.json()["refunded"]
    wait_until(lambda: f"job {job_id}: no longer driven on a" in cluster["a"].log(), timeout=2)
    events = Stream(cluster, "b", job_id, last_event_id=0).finish().events
    assert events[-1][1]["status"] == "Canceled" and [e for _, e in events].count(events[-1][1]) == 1
    time.sleep(1.5)
    assert cluster.job("c", job_id)["status"] == "canceled"
    assert len(Stream(cluster, "c", job_id, last_event_id=0).finish().events) == len(events)  # nothing after
    upstream_id = cluster.sql("SELECT upstream_id FROM jobs WHERE id = $1", job_id)[0][0]
    gone = httpx.get(
        f"{cluster.simulator.url}/luma/generations/{upstream_id}",
        headers={"Authorization": "Bearer demo-key"},
    )
    assert gone.status_code == 404  # Luma's cancel deletes the generation


def test_a_rate_limit_is_one_limit_across_replicas(cluster: Cluster) -> None:
    made = httpx.post(
        cluster["b"].url + "/admin/keys",
        json={"name": "limited", "tokens": 1000, "rate_limit_per_minute": 10, "max_concurrent_jobs": 100},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    if time.time() % 60 > 50:  # a window boundary mid-test would split the count
        time.sleep(61 - time.time() % 60)
    statuses = []
    for index in range(30):
        replica = cluster["abc"[index % 3]]
        response = httpx.post(
            replica.url + "/api/generations", json={"model": "local", "prompt": "a dot"}, headers=headers
        )
        statuses.append(response.status_code)
    assert statuses.count(202) == 10 and statuses.count(429) == 20, statuses


def test_sigkill_of_the_driver_hands_the_job_to_another_replica_and_the_stream_resumes(
    cluster: Cluster,
) -> None:
    job_id = cluster.create("a")
    first = Stream(cluster, "a", job_id)
    wait_until(lambda: cluster.job("b", job_id)["status"] == "processing", timeout=30)
    wait_until(lambda: first.events, timeout=10)  # the client is following on a when it dies
    time.sleep(0.5)
    cluster["a"].signal(signal.SIGKILL)
    killed = time.monotonic()
    first.finish(10)
    assert first.error is not None or first.events[-1][1]["status"] != "Completed"
    new_owner = wait_until(lambda: (o := cluster.owner(job_id))[0] != "a" and o, timeout=LEASE + 5)
    took = time.monotonic() - killed
    assert took < LEASE + 2.5, took
    last_seen = first.ids[-1]
    rest = Stream(cluster, "b", job_id, last_event_id=last_seen).finish()
    ids = first.ids + rest.ids
    assert ids == list(range(1, len(ids) + 1)), ids  # no gap, no duplicate across the cut
    assert rest.events[-1][1]["status"] == "Completed", rest.events[-1]
    assert new_owner[1] == 2  # claimed once, by one replica
    print(f"take-over after SIGKILL: {took:.2f} s by {new_owner[0]}")


def test_a_replica_paused_past_its_lease_writes_nothing_when_it_wakes(cluster: Cluster) -> None:
    job_id = cluster.create("b")
    wait_until(lambda: cluster.job("c", job_id)["status"] == "processing", timeout=30)
    cluster["b"].signal(signal.SIGSTOP)
    try:
        wait_until(lambda: cluster.owner(job_id)[0] == "c", timeout=LEASE + 5)
        time.sleep(1.0)
    finally:
        cluster["b"].signal(signal.SIGCONT)
    wait_until(lambda: f"job {job_id}: no longer driven on b" in cluster["b"].log(), timeout=5)
    events = Stream(cluster, "c", job_id, last_event_id=0).finish().events
    ids = [event_id for event_id, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    assert [e["status"] for _, e in events].count("Completed") == 1 and events[-1][1]["status"] == "Completed"
    progress = [e["progress"] for _, e in events if "progress" in e]
    assert progress == sorted(progress), progress  # no stale write from the paused driver in between
    assert cluster.owner(job_id) == ("c", 2)


def test_sigterm_with_a_stream_open_exits_and_hands_the_job_over(cluster: Cluster) -> None:
    job_id = cluster.create("c")
    watching = Stream(cluster, "c", job_id)
    wait_until(lambda: cluster.job("b", job_id)["status"] == "processing", timeout=30)
    wait_until(lambda: watching.events, timeout=10)  # the stream is open on c before it stops
    cluster["c"].signal(signal.SIGTERM)
    process = cluster["c"].process
    assert process is not None
    process.wait(15)  # the open stream does not hold the replica up
    exited = time.monotonic()
    watching.finish(5)
    assert watching.error is None  # the drain ended the stream cleanly; it was not cut
    wait_until(lambda: cluster.owner(job_id)[0] == "b", timeout=LEASE + 5)
    print(f"hand-over after SIGTERM: {time.monotonic() - exited:.2f} s")
    assert re.search(r"handed over \d+ unfinished jobs", cluster["c"].log())
    rest = Stream(cluster, "b", job_id, last_event_id=watching.ids[-1]).finish()
    ids = watching.ids + rest.ids
    assert ids == list(range(1, len(ids) + 1)) and rest.events[-1][1]["status"] == "Completed"


def test_money_invariants_hold_after_all_of_it(cluster: Cluster) -> None:
    time.sleep(1)
    for row in cluster.sql(
        "SELECT k.id, k.balance, COALESCE(SUM(l.delta), 0) AS total FROM api_keys k"
        " LEFT JOIN ledger l ON l.key_id = k.id GROUP BY k.id, k.balance"
    ):
        assert row["balance"] == row["total"], dict(row)
    for row in cluster.sql(
        "SELECT j.id, j.status, j.refunded,"
        " COUNT(*) FILTER (WHERE l.reason = 'debit') AS debits,"
        " COUNT(*) FILTER (WHERE l.reason = 'refund') AS refunds"
        " FROM jobs j LEFT JOIN ledger l ON l.job_id = j.id GROUP BY j.id, j.status, j.refunded"
    ):
        assert row["debits"] == 1, dict(row)
        assert row["refunds"] == (1 if row["status"] in ("failed", "canceled") else 0), dict(row)
        assert bool(row["refunded"]) == (row["refunds"] == 1), dict(row)
