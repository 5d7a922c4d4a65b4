"""Run every benchmark on loopback, the gateway beside the bare sse-starlette app, and write the results.

    .venv/bin/python -m bench.run [--quick] [--only bare,sqlite,postgres,replicas]

Variants: `bare` (the bare sse-starlette app), `sqlite` (one gateway on SQLite: every benchmark),
`postgres` (one gateway on a fresh PostgreSQL database) and `replicas` (three gateways on one fresh
PostgreSQL database and Redis, the load spread round-robin over them); the last two run create req/s,
first-event latency and 5 000 held streams (100 with `--quick`). Beside create req/s on SQLite and on
one PostgreSQL replica, `bench.store_floor` runs the same jobs' store writes alone. Writes
`bench/results/latest.json` and `bench/results/latest.md`. Bounded: about 8 minutes on 2 cores (a
held stream that never ends costs the load generator's 150 s deadline).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import clean_env, cpu_seconds, free_port, postgres_database, redis_prefix, shared_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
TICKS, INTERVAL = 10, 1.0


class Proc:
    """A server process and what /proc says of it."""

    def __init__(self, args: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server on {port} did not start")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def gateway_env(data_dir: Path, *, max_jobs: int) -> dict[str, str]:
    env = clean_env()
    env.update(
        {
            "GATEWAY_DATA_DIR": str(data_dir),
            # one key holds every benchmark stream: the per-key and per-process caps are lifted
            "GATEWAY_MAX_STREAMS_PER_KEY": "100000",
            "GATEWAY_MAX_STREAMS": "100000",
            "GATEWAY_MAX_CONNECTIONS": "100000",
            "GATEWAY_PROVIDERS__TICK__ADAPTER": "bench.tick_provider:TickProvider",
            "GATEWAY_PROVIDERS__TICK__BASE_URL": "http://127.0.0.1:9",
            "GATEWAY_PROVIDERS__TICK__PASSTHROUGH": "true",
            "GATEWAY_PROVIDERS__TICK__MAX_IN_FLIGHT": str(max_jobs),
            "GATEWAY_PROVIDERS__TICK__EXTRA__TICKS": str(TICKS),
            "GATEWAY_PROVIDERS__TICK__EXTRA__INTERVAL": str(INTERVAL),
            "GATEWAY_MODELS__TICK__PROVIDER": "tick",
            "GATEWAY_MODELS__TICK__KIND": "audio",
            "GATEWAY_MODELS__TICK__COST": "1",
            "GATEWAY_MODELS__INSTANT__PROVIDER": "tick",
            "GATEWAY_MODELS__INSTANT__KIND": "audio",
            "GATEWAY_MODELS__INSTANT__COST": "1",
            "GATEWAY_MODELS__INSTANT__UPSTREAM__TICKS": "0",
        }
    )
    return env


SIM_SPEED, SIM_POLL, RELAY_JOBS, THROUGHPUT_JOBS = 50.0, 0.2, 100, 300


def simulator_env(env: dict[str, str], simulator_url: str) -> dict[str, str]:
    """The gateway's providers pointed at a simulator process, as `gateway demo` does in-process."""
    env = dict(env, GATEWAY_DEMO="true")
    for name, prefix in (("LUMA", "/luma/dream-machine/v1"), ("SUNO", "/suno")):
        env[f"GATEWAY_PROVIDERS__{name}__BASE_URL"] = simulator_url + prefix
        env[f"GATEWAY_PROVIDERS__{name}__POLL_INTERVAL"] = str(SIM_POLL)
        env[f"GATEWAY_PROVIDERS__{name}__MAX_IN_FLIGHT"] = "10000"
    return env


def bench_module(name: str, *args: str) -> dict[str, Any]:
    """Run `python -m bench.<name> *args` and read the JSON it prints."""
    out = subprocess.run(
        [PY, "-m", f"bench.{name}", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def upstream(*args: str) -> dict[str, Any]:
    return bench_module("upstream", *args)


def relay(gateway: Proc, simulator_url: str, key: str) -> dict[str, Any]:
    """The same luma jobs followed through the gateway's SSE and by polling the simulator directly."""
    direct = upstream("direct", simulator_url, str(RELAY_JOBS), str(SIM_POLL))
    through = measure([gateway], "streams", "/api/generate", key, "luma", n=RELAY_JOBS, interval=SIM_POLL)
    through["jobs_per_s"] = through["completed"] / through["wall_s"]
    direct["jobs_per_s"] = RELAY_JOBS / direct["wall_s"]
    through["events_per_s"] = through["events"] / through["wall_s"]
    return {
        "direct": direct,
        "gateway": through,
        "ratios": {"jobs_per_s": through["jobs_per_s"] / direct["jobs_per_s"]},
    }


def create_key(env: dict[str, str], tokens: int) -> str:
    out = subprocess.run(
        [
            PY,
            "-m",
            "gateway.cli",
            "keys",
            "create",
            "--name",
            "bench",
            "--tokens",
            str(tokens),
            "--rate-limit",
            "10000000",
            "--max-jobs",
            "1000000",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(out.stdout)["key"]
    return key


def loadgen(*args: str) -> dict[str, Any]:
    return bench_module("loadgen", *args)


Servers = list[Proc]  # one server, or the replicas of one cluster (measured summed over them)
VARIANTS = ("bare", "sqlite", "postgres", "replicas")
LABELS = {
    "bare": "bare app",
    "gateway": "gateway (SQLite)",
    "postgres": "PostgreSQL, 1 replica",
    "replicas": "3 replicas, PostgreSQL + Redis",
}
SHARED_CORES_NOTE = (
    "The three replicas, PostgreSQL, Redis and the load generator all share the same {cores}: "
    "the 3-replica rows measure coordination cost on one box, not scale-out."
)


@contextmanager
def watching(servers: Servers) -> Iterator[dict[str, Any]]:
    """Server CPU seconds and peak RSS over the block, both summed over `servers` (sampled by a thread)."""
    import threading

    def rss() -> int:
        return sum(server.rss_bytes() for server in servers)

    def cpu() -> float:
        return sum(server.cpu_seconds() for server in servers)

    sample: dict[str, Any] = {"rss_before": rss(), "rss_peak": 0}
    cpu_before = cpu()
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(0.2):
            sample["rss_peak"] = max(sample["rss_peak"], rss())

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        yield sample
    finally:
        stop.set()
        thread.join()
        sample["server_cpu_s"] = cpu() - cpu_before


def drain(servers: Servers, timeout: float = 120) -> None:
    """Wait until no gateway has a job running, so one benchmark's jobs never load the next."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                break  # the bare app has no jobs
            if ready.get("running_jobs", 0) == 0:
                break
            time.sleep(0.2)


def measure(
    servers: Servers, mode: str, path: str, key: str, model: str, **options: object
) -> dict[str, Any]:
    """One load-generator run against `servers` (round-robin when several), with their CPU and memory
    over it; then drain."""
    flags = [f"--{name}={value}" for name, value in options.items()]
    if len(servers) == 1:
        target = f"--port={servers[0].port}"
    else:
        target = "--ports=" + ",".join(str(server.port) for server in servers)
    with watching(servers) as sample:
        result = loadgen(mode, target, f"--path={path}", f"--key={key}", f"--model={model}", *flags)
    result.update(sample)
    drain(servers)
    return result


@dataclass
class Target:
    """What one variant is measured on: its servers, the key to use (none for the bare app), its paths."""

    servers: Servers
    key: str = ""

    @property
    def bare(self) -> bool:
        return not self.key

    def path(self, benchmark: str) -> str:
        if self.bare:
            return {
                "streams": f"/generate?n={TICKS}&interval={INTERVAL}",
                "ttfe": "/generate?n=0&interval=0",
                "create": "/create",
            }[benchmark]
        return "/api/generations" if benchmark == "create" else "/api/generate"


def held_streams(targets: dict[str, Target], n: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, target in targets.items():
        result = measure(
            target.servers, "streams", target.path("streams"), target.key, "tick", n=n, interval=INTERVAL
        )
        result["rss_per_stream_kib"] = (result["rss_peak"] - result["rss_before"]) / max(1, n) / 1024
        result["all_delivered"] = result["completed"] == n and result["events"] == n * (TICKS + 2)
        rows[name] = result
    return rows


def first_event(targets: dict[str, Target], requests: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for concurrency in (1, 50):
        for name, target in targets.items():
            rows[f"{name}_c{concurrency}"] = measure(
                target.servers,
                "ttfe",
                target.path("ttfe"),
                target.key,
                "instant",
                n=requests,
                concurrency=concurrency,
            )
    return rows


def create_throughput(targets: dict[str, Target], requests: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, target in targets.items():
        rows[name] = measure(
            target.servers,
            "create",
            target.path("create"),
            target.key,
            "instant",
            n=requests,
            concurrency=100,
        )
    return rows


def store_floor(engine: str, requests: int) -> dict[str, Any]:
    """The store's writes for as many instant jobs as `create req/s` makes, alone (bench/store_floor.py)."""
    jobs, first_events = f"--jobs={requests * 10}", f"--first-events={requests}"
    result: dict[str, Any] = bench_module("store_floor", f"--engine={engine}", jobs, first_events)[engine]
    return result


def ledger_proof(gateway: Proc, key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{gateway.port}"
    balance = httpx.get(f"{base}/api/balance", headers=headers).json()["token_balance"]
    total, offset, deltas = None, 0, 0
    while total is None or offset < total:
        page = httpx.get(
            f"{base}/api/ledger", params={"limit": 100, "offset": offset}, headers=headers
        ).json()
        total = page["total"]
        deltas += sum(item["delta"] for item in page["items"])
        offset += 100
    return {
        "balance": balance,
        "ledger_sum": deltas,
        "entries": total,
        "no_overspend": balance >= 0 and deltas == balance,
    }


def add_ratios(results: dict[str, Any]) -> None:
    """Each gateway variant against the bare app, where both ran."""
    for rows in results.get("held_streams", {}).values():
        if bare := rows.get("bare"):
            rows["ratios"] = {
                name: {
                    "wall": row["wall_s"] / bare["wall_s"],
                    "rss_per_stream": row["rss_per_stream_kib"] / max(0.01, bare["rss_per_stream_kib"]),
                }
                for name, row in rows.items()
                if name in LABELS and name != "bare"
            }
    ttfe = results.get("first_event", {})
    if "bare_c1" in ttfe and "bare_c50" in ttfe:
        ttfe["ratios"] = {
            name: {
                "p99_c1_delta_ms": ttfe[f"{name}_c1"]["p99_ms"] - ttfe["bare_c1"]["p99_ms"],
                "p99_c50": ttfe[f"{name}_c50"]["p99_ms"] / ttfe["bare_c50"]["p99_ms"],
            }
            for name in LABELS
            if name != "bare" and f"{name}_c1" in ttfe
        }
    create = results.get("create", {})
    if bare := create.get("bare"):
        create["ratios"] = {
            name: {"rps": row["rps"] / bare["rps"]}
            for name, row in create.items()
            if name in LABELS and name != "bare"
        }
        # The best `create req/s` could reach with these writes: on SQLite the store runs on the
        # server's one loop, so a request costs at least the bare app's whole request plus the writes
        # alone; on PostgreSQL it can go no faster than the writes alone do.
        for name, floor in results.get("store_floor", {}).items():
            if name == "gateway":
                floor["best_create_ratio"] = floor["jobs_per_s"] / (bare["rps"] + floor["jobs_per_s"])
            else:
                floor["best_create_ratio"] = floor["jobs_per_s"] / bare["rps"]


def _fmt(row: dict[str, Any] | None, template: str) -> str:
    return template.format(**row) if row else ""


def _suffix(name: str) -> str:
    return "" if name == "gateway" else f" — {LABELS[name]}"


def markdown(results: dict[str, Any]) -> str:
    """The results table (gateway rows against the bare app), then the stores side by side."""
    hold = results.get("held_streams", {})
    ttfe = results.get("first_event", {})
    create = results.get("create", {})
    lines = [
        f"# Benchmark results ({results['when']}, {results['machine']})",
        "",
        "| benchmark | bare app | gateway | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for n, rows in hold.items():
        b = rows.get("bare")
        for name in (v for v in ("gateway", "postgres", "replicas") if v in rows):
            g, ratio, tag = rows[name], rows.get("ratios", {}).get(name), _suffix(name)
            wall = f"{ratio['wall']:.2f}×" if ratio else ""
            rss = f"{ratio['rss_per_stream']:.2f}×" if ratio else ""
            lines += [
                f"| {n} held streams: wall s{tag} | {_fmt(b, '{wall_s:.1f}')} | {g['wall_s']:.1f} | {wall} | ≤ 1.2× |",
                f"| {n} held streams: RSS KiB/stream{tag} | {_fmt(b, '{rss_per_stream_kib:.1f}')} | "
                f"{g['rss_per_stream_kib']:.1f} | {rss} | ≤ 2× |",
                f"| {n} held streams: all delivered{tag} | {_fmt(b, '{all_delivered}')} | {g['all_delivered']} "
                "| | every event |",
                f"| {n} held streams: lag p50/p99 ms{tag} | {_fmt(b, '{lag_p50_ms:.1f} / {lag_p99_ms:.1f}')} | "
                f"{g['lag_p50_ms']:.1f} / {g['lag_p99_ms']:.1f} | | |",
                f"| {n} held streams: server CPU s (client CPU s){tag} | "
                f"{_fmt(b, '{server_cpu_s:.1f} ({client_cpu_s:.1f})')} | "
                f"{g['server_cpu_s']:.1f} ({g['client_cpu_s']:.1f}) | | |",
            ]
    for concurrency, target, key in ((1, "≤ +5 ms", "p99_c1_delta_ms"), (50, "≤ 1.5×", "p99_c50")):
        b = ttfe.get(f"bare_c{concurrency}")
        for name in (v for v in ("gateway", "postgres", "replicas") if f"{v}_c{concurrency}" in ttfe):
            g, ratio = ttfe[f"{name}_c{concurrency}"], ttfe.get("ratios", {}).get(name)
            shown = "" if not ratio else f"+{ratio[key]:.2f} ms" if concurrency == 1 else f"{ratio[key]:.2f}×"
            lines.append(
                f"| first event p50/p99 ms, c={concurrency}{_suffix(name)} | "
                f"{_fmt(b, '{p50_ms:.2f} / {p99_ms:.2f}')} | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | "
                f"{shown} | {target} |"
            )
        if concurrency == 50:
            for name in (v for v in ("gateway", "postgres", "replicas") if f"{v}_c50" in ttfe):
                lines.append(
                    f"| first event req/s, c=50{_suffix(name)} | {_fmt(b, '{rps:.0f}')} | "
                    f"{ttfe[f'{name}_c50']['rps']:.0f} | | |"
                )
    for name in (v for v in ("gateway", "postgres", "replicas") if v in create):
        ratio = create.get("ratios", {}).get(name)
        lines.append(
            f"| create req/s, 100 clients{_suffix(name)} | {_fmt(create.get('bare'), '{rps:.0f}')} | "
            f"{create[name]['rps']:.0f} | {_fmt(ratio, '{rps:.2f}×')} | ≥ 0.5× |"
        )
    for name, floor in results.get("store_floor", {}).items():
        best = f"best possible {floor['best_create_ratio']:.2f}×" if "best_create_ratio" in floor else ""
        server = (
            f", {floor['server_cpu_us_per_job']:.0f} in PostgreSQL"
            if "server_cpu_us_per_job" in floor
            else ""
        )
        lines += [
            f"| create req/s: the store's writes alone, no HTTP (100 at a time){_suffix(name)} | | "
            f"{floor['jobs_per_s']:.0f} ({floor['cpu_us_per_job']:.0f} µs CPU/job{server}) | "
            f"{best} | |",
            f"| first event p50/p99 ms, c=1: the store's writes alone{_suffix(name)} | | "
            f"{floor['first_event_p50_ms']:.2f} / {floor['first_event_p99_ms']:.2f} | | |",
        ]
    for name, ledger in (
        ("gateway", results.get("ledger")),
        ("postgres", results.get("ledger_postgres")),
        ("replicas", results.get("ledger_replicas")),
    ):
        if ledger:
            lines += [
                f"| ledger under contention: debits/s (100 clients, one key){_suffix(name)} | | "
                f"{ledger['debits_per_s']:.0f} | | |",
                f"| no overspend: balance {ledger['balance']}, ledger sum {ledger['ledger_sum']}{_suffix(name)} | | "
                f"{ledger['no_overspend']} | | always |",
            ]
    if r := results.get("relay"):
        lines.append(
            f"| relay: {RELAY_JOBS} luma jobs, jobs/s (events/s) | direct poll {r['direct']['jobs_per_s']:.1f} "
            f"({r['direct']['changes_per_s']:.0f}) | {r['gateway']['jobs_per_s']:.1f} "
            f"({r['gateway']['events_per_s']:.0f}) | {r['ratios']['jobs_per_s']:.2f}× | ≥ 0.8× |"
        )
    if t := results.get("throughput"):
        lines.append(
            f"| job throughput: {t['jobs']} suno jobs, simulator ×{SIM_SPEED:g}, completed/min | | "
            f"{t['jobs_per_minute']:.0f} ({t['completed']} done, {t['failed']} failed) | | |"
        )
    lines += ["", *side_by_side(results)]
    return "\n".join(lines) + "\n"


def side_by_side(results: dict[str, Any]) -> list[str]:
    """The rows measured on every store, one column per variant."""
    names = [n for n in ("bare", "gateway", "postgres", "replicas") if n in results.get("variants", ())]
    if not any(n in ("postgres", "replicas") for n in names):
        return []
    hold = results.get("held_streams", {}).get(str(results["held_n"]), {})
    ttfe = results.get("first_event", {})
    create = results.get("create", {})
    n = results["held_n"]
    rows: list[tuple[str, str, Any]] = [
        ("create req/s, 100 clients", "{rps:.0f}", lambda v: create.get(v)),
        ("first event p50 / p99 ms, c=1", "{p50_ms:.2f} / {p99_ms:.2f}", lambda v: ttfe.get(f"{v}_c1")),
        ("first event p50 / p99 ms, c=50", "{p50_ms:.2f} / {p99_ms:.2f}", lambda v: ttfe.get(f"{v}_c50")),
        (f"{n} held streams: wall s", "{wall_s:.1f}", lambda v: hold.get(v)),
        (
            f"{n} held streams: all delivered (streams completed)",
            "{all_delivered} ({completed}/{n})",
            lambda v: hold.get(v),
        ),
        (f"{n} held streams: lag p50 / p99 ms", "{lag_p50_ms:.1f} / {lag_p99_ms:.1f}", lambda v: hold.get(v)),
        (f"{n} held streams: RSS KiB/stream (summed)", "{rss_per_stream_kib:.1f}", lambda v: hold.get(v)),
        (f"{n} held streams: server CPU s (summed)", "{server_cpu_s:.1f}", lambda v: hold.get(v)),
    ]
    lines = [
        "## The stores side by side",
        "",
        "| benchmark | " + " | ".join(LABELS[v] for v in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, template, pick in rows:
        lines.append(f"| {label} | " + " | ".join(_fmt(pick(v), template) for v in names) + " |")
    if "replicas" in names:
        lines += ["", SHARED_CORES_NOTE.format(cores=results["machine"])]
    return lines


def gateway_proc(env: dict[str, str]) -> Proc:
    port = free_port()
    return Proc([PY, "-m", "gateway.cli", "serve", "--port", str(port), "--log-level", "warning"], env, port)


def store_benchmarks(results: dict[str, Any], targets: dict[str, Target], held_n: int, requests: int) -> None:
    """Create req/s, first-event latency and held streams on `targets`, merged into `results`."""
    results.setdefault("held_streams", {}).setdefault(str(held_n), {})
    held = held_streams(targets, held_n)
    merge(results["held_streams"][str(held_n)], held)
    merge(results.setdefault("first_event", {}), first_event(targets, requests))
    merge(results.setdefault("create", {}), create_throughput(targets, requests * 10))


def merge(into: dict[str, Any], rows: dict[str, Any]) -> None:
    into.update(rows)


def cluster_benchmarks(
    results: dict[str, Any],
    base_env: dict[str, str],
    replicas: int,
    bare: Target | None,
    held_n: int,
    requests: int,
) -> None:
    """One fresh PostgreSQL database (and Redis prefix, for several replicas): `replicas` gateways on it,
    measured against the bare app when it runs. The database and Redis keys are dropped after."""
    name = "postgres" if replicas == 1 else "replicas"
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_database())
        env = dict(base_env, **shared_env(database_url, "", admin_token=os.urandom(16).hex()))
        if replicas == 1:
            for setting in ("GATEWAY_REDIS_URL", "GATEWAY_REDIS_PREFIX"):
                env.pop(setting)
        else:
            env["GATEWAY_REDIS_PREFIX"] = stack.enter_context(redis_prefix())
        key = create_key(env, tokens=10_000_000)  # migrates the fresh database first
        servers: Servers = []
        try:
            for index in range(replicas):
                data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-{index}-"))
                replica_env = dict(env, GATEWAY_INSTANCE_ID=f"bench-{index}", GATEWAY_DATA_DIR=str(data_dir))
                servers.append(gateway_proc(replica_env))
            targets = {name: Target(servers, key)}
            if bare is not None and "bare" not in results.get(
                "create", {}
            ):  # measured once, in the first phase
                targets = {"bare": bare, **targets}
            store_benchmarks(results, targets, held_n, requests)
            if replicas == 1:
                results.setdefault("store_floor", {})["postgres"] = store_floor("postgres", requests)
            ledger = ledger_proof(servers[0], key)
            ledger["debits_per_s"] = results["create"][name]["rps"]
            results[f"ledger_{name}"] = ledger
        finally:
            for server in servers:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller loads (a smoke run)")
    parser.add_argument(
        "--only",
        default=",".join(VARIANTS),
        help=f"comma-separated variants to run, of {','.join(VARIANTS)} (default: all)",
    )
    args = parser.parse_args()
    variants = [v.strip() for v in args.only.split(",") if v.strip()]
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    sizes = [100] if args.quick else [1000, 5000, 10000]
    cluster_n = sizes[0] if args.quick else 5000  # the mark: three replicas hold 5 000 streams
    requests = 100 if args.quick else 200
    data_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    simulator_port = free_port()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    env = simulator_env(gateway_env(data_dir, max_jobs=max(sizes) * 2), simulator_url)
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
        "ticks": TICKS,
        "interval_s": INTERVAL,
        "variants": [{"sqlite": "gateway"}.get(v, v) for v in variants],
        "held_n": cluster_n,
    }
    if "replicas" in variants:
        results["note"] = SHARED_CORES_NOTE.format(cores=results["machine"])
        print(results["note"], file=sys.stderr)
    with ExitStack() as stack:
        simulator = Proc(
            [PY, "-m", "providers.simulator", "--port", str(simulator_port), "--speed", str(SIM_SPEED)],
            env,
            simulator_port,
        )
        stack.callback(simulator.stop)
        bare: Target | None = None
        if "bare" in variants:
            bare_port = free_port()
            bare_proc = Proc(
                [
                    PY,
                    "-m",
                    "uvicorn",
                    "bench.bare_app:app",
                    "--port",
                    str(bare_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--backlog",
                    "4096",
                ],
                env,
                bare_port,
            )
            stack.callback(bare_proc.stop)
            bare = Target([bare_proc])
        if "sqlite" in variants:
            sqlite_benchmarks(results, env, bare, simulator_url, sizes, requests)
        elif bare is not None and not {"postgres", "replicas"} & set(variants):
            store_benchmarks(results, {"bare": bare}, sizes[0], requests)
        if "postgres" in variants:
            cluster_benchmarks(results, env, 1, bare, cluster_n, requests)
        if "replicas" in variants:
            cluster_benchmarks(results, env, 3, bare, cluster_n, requests)
    add_ratios(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "latest.md").write_text(markdown(results))
    print(markdown(results))


def sqlite_benchmarks(
    results: dict[str, Any],
    env: dict[str, str],
    bare: Target | None,
    simulator_url: str,
    sizes: list[int],
    requests: int,
) -> None:
    """Every benchmark on one gateway on SQLite (the bare app beside it when it runs)."""
    key = create_key(env, tokens=10_000_000)
    gateway = gateway_proc(env)
    targets = {"gateway": Target([gateway], key)}
    if bare is not None:
        targets = {"bare": bare, **targets}
    try:
        results["held_streams"] = {str(n): held_streams(targets, n) for n in sizes}
        results["first_event"] = first_event(targets, requests)
        results["create"] = create_throughput(targets, requests * 10)
        results.setdefault("store_floor", {})["gateway"] = store_floor("sqlite", requests)
        ledger = ledger_proof(gateway, key)
        ledger["debits_per_s"] = results["create"]["gateway"]["rps"]
        results["ledger"] = ledger
        results["relay"] = relay(gateway, simulator_url, key)
        results["throughput"] = upstream(  # a fresh key: its completed jobs are exactly these
            "throughput",
            f"http://127.0.0.1:{gateway.port}",
            create_key(env, 100_000),
            str(THROUGHPUT_JOBS),
            "suno",
        )
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
