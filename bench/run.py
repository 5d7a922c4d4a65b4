"""Run every benchmark on loopback, the gateway beside the bare sse-starlette app, and write the results.

    .venv/bin/python -m bench.run [--quick]

Writes `bench/results/latest.json` and `bench/results/latest.md`. Bounded: well under 10 minutes.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
TICKS, INTERVAL = 10, 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": str(data_dir),
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


def upstream(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "bench.upstream", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def relay(gateway: Proc, simulator_url: str, key: str) -> dict[str, Any]:
    """The same luma jobs followed through the gateway's SSE and by polling the simulator directly."""
    direct = upstream("direct", simulator_url, str(RELAY_JOBS), str(SIM_POLL))
    through = measure(gateway, "streams", "/api/generate", key, "luma", n=RELAY_JOBS, interval=SIM_POLL)
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
    out = subprocess.run(
        [PY, "-m", "bench.loadgen", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@contextmanager
def watching(server: Proc) -> Iterator[dict[str, Any]]:
    """Server CPU seconds and peak RSS over the block (sampled by a thread)."""
    import threading

    sample: dict[str, Any] = {"rss_before": server.rss_bytes(), "rss_peak": 0}
    cpu_before = server.cpu_seconds()
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(0.2):
            sample["rss_peak"] = max(sample["rss_peak"], server.rss_bytes())

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        yield sample
    finally:
        stop.set()
        thread.join()
        sample["server_cpu_s"] = server.cpu_seconds() - cpu_before


def drain(server: Proc, timeout: float = 120) -> None:
    """Wait until the gateway has no job running, so one benchmark's jobs never load the next."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return  # the bare app has no jobs
        if ready.get("running_jobs", 0) == 0:
            return
        time.sleep(0.2)


def measure(server: Proc, mode: str, path: str, key: str, model: str, **options: object) -> dict[str, Any]:
    """One load-generator run against `server`, with the server's CPU and memory over it; then drain."""
    flags = [f"--{name}={value}" for name, value in options.items()]
    with watching(server) as sample:
        result = loadgen(
            mode, f"--port={server.port}", f"--path={path}", f"--key={key}", f"--model={model}", *flags
        )
    result.update(sample)
    drain(server)
    return result


def held_streams(gateway: Proc, bare: Proc, key: str, n: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, server, path, auth, model in (
        ("bare", bare, f"/generate?n={TICKS}&interval={INTERVAL}", "", "tick"),
        ("gateway", gateway, "/api/generate", key, "tick"),
    ):
        result = measure(server, "streams", path, auth, model, n=n, interval=INTERVAL)
        result["rss_per_stream_kib"] = (result["rss_peak"] - result["rss_before"]) / max(1, n) / 1024
        result["all_delivered"] = result["completed"] == n and result["events"] == n * (TICKS + 2)
        rows[name] = result
    rows["ratios"] = {
        "wall": rows["gateway"]["wall_s"] / rows["bare"]["wall_s"],
        "rss_per_stream": rows["gateway"]["rss_per_stream_kib"]
        / max(0.01, rows["bare"]["rss_per_stream_kib"]),
    }
    return rows


def first_event(gateway: Proc, bare: Proc, key: str, requests: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for concurrency in (1, 50):
        for name, server, path, auth in (
            ("bare", bare, "/generate?n=0&interval=0", ""),
            ("gateway", gateway, "/api/generate", key),
        ):
            rows[f"{name}_c{concurrency}"] = measure(
                server, "ttfe", path, auth, "instant", n=requests, concurrency=concurrency
            )
    rows["ratios"] = {
        "p99_c1_delta_ms": rows["gateway_c1"]["p99_ms"] - rows["bare_c1"]["p99_ms"],
        "p99_c50": rows["gateway_c50"]["p99_ms"] / rows["bare_c50"]["p99_ms"],
    }
    return rows


def create_throughput(gateway: Proc, bare: Proc, key: str, requests: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, server, path, auth in (
        ("bare", bare, "/create", ""),
        ("gateway", gateway, "/api/generations", key),
    ):
        rows[name] = measure(server, "create", path, auth, "instant", n=requests, concurrency=100)
    rows["ratios"] = {"rps": rows["gateway"]["rps"] / rows["bare"]["rps"]}
    return rows


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


def markdown(results: dict[str, Any]) -> str:
    hold = results["held_streams"]
    ttfe = results["first_event"]
    create = results["create"]
    lines = [
        f"# Benchmark results ({results['when']}, {results['machine']})",
        "",
        "| benchmark | bare app | gateway | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for n, rows in hold.items():
        b, g = rows["bare"], rows["gateway"]
        lines += [
            f"| {n} held streams: wall s | {b['wall_s']:.1f} | {g['wall_s']:.1f} | {rows['ratios']['wall']:.2f}× | ≤ 1.2× |",
            f"| {n} held streams: RSS KiB/stream | {b['rss_per_stream_kib']:.1f} | {g['rss_per_stream_kib']:.1f} | "
            f"{rows['ratios']['rss_per_stream']:.2f}× | ≤ 2× |",
            f"| {n} held streams: all delivered | {b['all_delivered']} | {g['all_delivered']} | | every event |",
            f"| {n} held streams: lag p50/p99 ms | {b['lag_p50_ms']:.1f} / {b['lag_p99_ms']:.1f} | "
            f"{g['lag_p50_ms']:.1f} / {g['lag_p99_ms']:.1f} | | |",
            f"| {n} held streams: server CPU s (client CPU s) | {b['server_cpu_s']:.1f} ({b['client_cpu_s']:.1f}) | "
            f"{g['server_cpu_s']:.1f} ({g['client_cpu_s']:.1f}) | | |",
        ]
    lines += [
        f"| first event p50/p99 ms, c=1 | {ttfe['bare_c1']['p50_ms']:.2f} / {ttfe['bare_c1']['p99_ms']:.2f} | "
        f"{ttfe['gateway_c1']['p50_ms']:.2f} / {ttfe['gateway_c1']['p99_ms']:.2f} | "
        f"+{ttfe['ratios']['p99_c1_delta_ms']:.2f} ms | ≤ +5 ms |",
        f"| first event p50/p99 ms, c=50 | {ttfe['bare_c50']['p50_ms']:.2f} / {ttfe['bare_c50']['p99_ms']:.2f} | "
        f"{ttfe['gateway_c50']['p50_ms']:.2f} / {ttfe['gateway_c50']['p99_ms']:.2f} | "
        f"{ttfe['ratios']['p99_c50']:.2f}× | ≤ 1.5× |",
        f"| first event req/s, c=50 | {ttfe['bare_c50']['rps']:.0f} | {ttfe['gateway_c50']['rps']:.0f} | | |",
        f"| create req/s, 100 clients | {create['bare']['rps']:.0f} | {create['gateway']['rps']:.0f} | "
        f"{create['ratios']['rps']:.2f}× | ≥ 0.5× |",
    ]
    ledger = results["ledger"]
    lines += [
        f"| ledger under contention: debits/s (100 clients, one key) | | {ledger['debits_per_s']:.0f} | | |",
        f"| no overspend: balance {ledger['balance']}, ledger sum {ledger['ledger_sum']} | | "
        f"{ledger['no_overspend']} | | always |",
    ]
    r = results["relay"]
    lines.append(
        f"| relay: {RELAY_JOBS} luma jobs, jobs/s (events/s) | direct poll {r['direct']['jobs_per_s']:.1f} "
        f"({r['direct']['changes_per_s']:.0f}) | {r['gateway']['jobs_per_s']:.1f} ({r['gateway']['events_per_s']:.0f}) "
        f"| {r['ratios']['jobs_per_s']:.2f}× | ≥ 0.8× |"
    )
    t = results["throughput"]
    lines.append(
        f"| job throughput: {t['jobs']} suno jobs, simulator ×{SIM_SPEED:g}, completed/min | | "
        f"{t['jobs_per_minute']:.0f} ({t['completed']} done, {t['failed']} failed) | | |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller loads (a smoke run)")
    args = parser.parse_args()
    sizes = [100] if args.quick else [1000, 5000]
    requests = 100 if args.quick else 200
    data_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    bare_port, gateway_port, simulator_port = free_port(), free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    env = simulator_env(gateway_env(data_dir, max_jobs=max(sizes) * 2), simulator_url)
    key = create_key(env, tokens=10_000_000)
    simulator = Proc(
        [PY, "-m", "providers.simulator", "--port", str(simulator_port), "--speed", str(SIM_SPEED)],
        env,
        simulator_port,
    )
    bare = Proc(
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
    gateway = Proc(
        [PY, "-m", "gateway.cli", "serve", "--port", str(gateway_port), "--log-level", "warning"],
        env,
        gateway_port,
    )
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
        "ticks": TICKS,
        "interval_s": INTERVAL,
    }
    try:
        results["held_streams"] = {str(n): held_streams(gateway, bare, key, n) for n in sizes}
        results["first_event"] = first_event(gateway, bare, key, requests)
        results["create"] = create_throughput(gateway, bare, key, requests * 10)
        ledger = ledger_proof(gateway, key)
        ledger["debits_per_s"] = results["create"]["gateway"]["rps"]
        results["ledger"] = ledger
        results["relay"] = relay(gateway, simulator_url, key)
        results["throughput"] = upstream(  # a fresh key: its completed jobs are exactly these
            "throughput",
            f"http://127.0.0.1:{gateway_port}",
            create_key(env, 100_000),
            str(THROUGHPUT_JOBS),
            "suno",
        )
    finally:
        gateway.stop()
        bare.stop()
        simulator.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "latest.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
