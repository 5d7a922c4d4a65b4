"""Take-over after SIGKILL: how long a job driven by a killed replica waits for another to own it, and for
its next event.

    .venv/bin/python -m bench.takeover [--lease 15] [--tries 5]

One `gateway simulator` (speed 4) and three `gateway demo --simulator-url` replicas on a fresh PostgreSQL
database and Redis prefix. Each try creates a luma job on a live replica, waits until it is `processing`
and a Processing event is recorded (then 1 s more), SIGKILLs its driver (the `owner` column of `jobs`),
then polls `jobs` until another replica owns it (owner changed, epoch up) and until the next event is
recorded (`last_event_id` grows); the killed replica is restarted before the next try. Prints each try and the medians; writes `bench/results/takeover.json`
(`takeover-lease<N>.json` for a lease other than the default).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import (
    DemoReplica,
    Simulator,
    clean_env,
    postgres_database,
    redis_prefix,
    shared_env,
    sql,
    wait_until,
)

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_LEASE = 15.0
SPEED = "4"  # a luma video then takes about 15 s upstream: long enough to kill its driver midway
POLL = 0.02  # how often `jobs` is read while waiting for the take-over


class Cluster:
    """The replicas by name, the database they share and one API key."""

    def __init__(self, replicas: dict[str, DemoReplica], database_url: str, admin_token: str) -> None:
        self.replicas = replicas
        self.database_url = database_url
        made = httpx.post(
            self.live()[0].url + "/admin/keys",
            json={"name": "takeover", "tokens": 100_000, "max_concurrent_jobs": 100},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        made.raise_for_status()
        self.headers = {"Authorization": f"Bearer {made.json()['key']}"}

    def live(self) -> list[DemoReplica]:
        return [replica for replica in self.replicas.values() if replica.alive]

    def create(self, replica: DemoReplica) -> str:
        response = httpx.post(
            replica.url + "/api/generations",
            json={"model": "luma", "prompt": "a slow pan over the sea"},
            headers=self.headers,
            timeout=10,
        )
        response.raise_for_status()
        job_id: str = response.json()["id"]
        return job_id

    def status(self, job_id: str) -> str:
        replica = self.live()[0]
        response = httpx.get(f"{replica.url}/api/generations/{job_id}", headers=self.headers, timeout=10)
        response.raise_for_status()
        status: str = response.json()["status"]
        return status

    def last_event(self, job_id: str) -> dict[str, Any]:
        found = sql(
            self.database_url,
            "SELECT data FROM job_events WHERE job_id = $1 ORDER BY seq DESC LIMIT 1",
            job_id,
        )
        return json.loads(found[0]["data"]) if found else {}

    def row(self, job_id: str) -> tuple[str, int, int]:
        """(owner, epoch, last_event_id) of the job, as PostgreSQL has them."""
        found = sql(self.database_url, "SELECT owner, epoch, last_event_id FROM jobs WHERE id = $1", job_id)[
            0
        ]
        return found["owner"], found["epoch"], found["last_event_id"]


def one_try(cluster: Cluster, index: int, simulator_url: str, lease: float) -> dict[str, Any]:
    """Create on a live replica, kill the job's driver, time the take-over and the next event, restart it."""
    live = cluster.live()
    job_id = cluster.create(live[index % len(live)])
    wait_until(lambda: cluster.status(job_id) == "processing", timeout=60)
    # Mid-progress, as a real crash would be: the driver has recorded a Processing event, and some more time.
    wait_until(lambda: cluster.last_event(job_id).get("status") == "Processing", timeout=60)
    time.sleep(1.0)
    owner, epoch, _ = cluster.row(job_id)
    victim = cluster.replicas[owner]
    victim.kill()
    killed = time.monotonic()
    _, _, last_event = cluster.row(job_id)  # after the kill: nothing the dead driver wrote is counted
    took_owner = took_event = None
    new_owner, new_epoch = owner, epoch
    deadline = killed + lease + 60
    while time.monotonic() < deadline and took_event is None:
        now_owner, now_epoch, now_event = cluster.row(job_id)
        now = time.monotonic()
        if took_owner is None and now_owner != owner and now_epoch > epoch:
            took_owner, new_owner, new_epoch = now - killed, now_owner, now_epoch
        if took_owner is not None and now_event > last_event:
            took_event = now - killed
        time.sleep(POLL)
    around = {  # the last event the dead driver recorded and the first of its successor
        row["seq"]: json.loads(row["data"])
        for row in sql(
            cluster.database_url,
            "SELECT seq, data FROM job_events WHERE job_id = $1 AND seq IN ($2, $3)",
            job_id,
            last_event,
            last_event + 1,
        )
    }
    victim.start(simulator_url)
    victim.wait_ready()
    result = {
        "job": job_id,
        "killed": owner,
        "epoch_before": epoch,
        "new_owner": new_owner,
        "epoch_after": new_epoch,
        "owner_s": took_owner,
        "next_event_s": took_event,
        "last_event_before": around.get(last_event),
        "next_event": around.get(last_event + 1),
    }
    print(json.dumps(result), flush=True)
    return result


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--lease", type=float, default=DEFAULT_LEASE, help="GATEWAY_LEASE_SECONDS (default 15)"
    )
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    admin_token = secrets.token_hex(16)
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_database())
        prefix = stack.enter_context(redis_prefix())
        env = {
            **clean_env(),
            **shared_env(database_url, prefix, admin_token),
            "GATEWAY_LEASE_SECONDS": f"{args.lease:g}",
            "GATEWAY_SIMULATOR__SPEED": SPEED,  # the replicas poll the simulator at 2 s / speed
            "GATEWAY_STORAGE_URL": (workdir / "results").as_uri(),
        }
        simulator = Simulator(workdir, SPEED)
        stack.callback(simulator.stop)
        replicas = {name: DemoReplica(name, workdir, env) for name in ("a", "b", "c")}
        for replica in replicas.values():
            stack.callback(replica.stop)
        simulator.wait_ready()
        for replica in replicas.values():  # all at once: they migrate the empty database together
            replica.start(simulator.url)
        for replica in replicas.values():
            replica.wait_ready()
        cluster = Cluster(replicas, database_url, admin_token)
        tries = [one_try(cluster, index, simulator.url, args.lease) for index in range(args.tries)]
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lease_s": args.lease,
        "simulator_speed": float(SPEED),
        "replicas": 3,
        "tries": tries,
        "median_owner_s": median([t["owner_s"] for t in tries]),
        "median_next_event_s": median([t["next_event_s"] for t in tries]),
        "failed": sum(1 for t in tries if t["owner_s"] is None or t["next_event_s"] is None),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "takeover.json" if args.lease == DEFAULT_LEASE else f"takeover-lease{args.lease:g}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"lease {args.lease:g} s, {len(tries)} tries: take-over median {fmt(result['median_owner_s'])} s, "
        f"next event median {fmt(result['median_next_event_s'])} s ({result['failed']} failed)"
    )


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
