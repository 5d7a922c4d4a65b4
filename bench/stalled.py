"""Clients that never read beside clients that do: the gateway's memory stays bounded and readers keep up.

    .venv/bin/python -m bench.stalled [--stalled 1000] [--readers 100] [--jobs 20] [--dropped 100]
                                      [--send-timeout 5]

One `gateway serve` on SQLite with the tick provider, whose events carry the time they were made.
Three phases, each on fresh jobs:
- baseline: `readers` clients follow `jobs` "big" jobs (60 events of 1 KiB over 30 s) and read all;
- with stalled: the same, beside `stalled` clients that open the same streams with a 1 KiB receive
  buffer and never read (the socket buffers take a whole job's stream: nothing blocks);
- dropping: `dropped` such clients on "huge" jobs (150 events of 16 KiB in 7.5 s: more than the
  buffers take, so the sends block), dropped after the send timeout.
Reported per phase: the server's RSS (before, peak, at the end, after the drops), the kernel's TCP
buffer memory (machine-wide, outside any RSS), how late the readers got each live event (p50 / p99 /
max from the moment it was made), how many stalled clients were dropped
(`gateway_streams_ended_total{reason="stalled"}`), and that a dropped client resumes: a sample wakes
up, reads what it had been sent, and follows the rest with Last-Event-ID, every event once.
Writes `bench/results/stalled.json`. About two minutes; not part of `bench.run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.run import RESULTS, Proc, create_key, gateway_env, gateway_proc, watching

# "big": 60 events of 1 KiB in 30 s a job (about 70 KiB: the socket buffers take all of it);
# "huge": 150 events of 16 KiB in 7.5 s (2.4 MiB: more than the buffers hold, so the sends block).
MODELS = {"big": (60, 0.5, 1024), "huge": (150, 0.05, 16384)}
WOKEN = 10  # stalled clients that wake up and resume, to show that they can


def server_env(data_dir: Path, send_timeout: float, streams: int) -> dict[str, str]:
    env = gateway_env(data_dir, max_jobs=1000)
    for model, (ticks, interval, size) in MODELS.items():
        name = f"GATEWAY_MODELS__{model.upper()}__"
        env.update(
            {
                name + "PROVIDER": "tick",
                name + "KIND": "audio",
                name + "COST": "1",
                name + "UPSTREAM__TICKS": str(ticks),
                name + "UPSTREAM__INTERVAL": str(interval),
                name + "UPSTREAM__MESSAGE_BYTES": str(size),
            }
        )
    env.update(
        {
            "GATEWAY_STREAM_SEND_TIMEOUT_SECONDS": str(send_timeout),
            "GATEWAY_MAX_STREAMS_PER_KEY": str(streams),
            "GATEWAY_MAX_STREAMS": str(streams),
        }
    )
    return env


def create_jobs(base: str, key: str, model: str, n: int) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        made = [
            client.post("/api/generations", json={"model": model, "prompt": f"job {i}"}) for i in range(n)
        ]
    for response in made:
        response.raise_for_status()
    return [response.json()["id"] for response in made]


def open_stalled(port: int, key: str, job_ids: list[str], n: int) -> list[tuple[str, socket.socket]]:
    """`n` streams over the jobs, round-robin, from sockets with a tiny receive buffer that read nothing."""
    opened = []
    for index in range(n):
        job_id = job_ids[index % len(job_ids)]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            f"GET /api/generations/{job_id}/events HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {key}\r\n\r\n".encode()
        )
        opened.append((job_id, sock))
    return opened


async def read_all(base: str, key: str, job_ids: list[str], readers: int, ticks: int) -> dict[str, Any]:
    """`readers` clients over the jobs, each reading its stream to the end; the lag of every live event
    (one made after the reader connected: a replayed one is late by design)."""
    lags: list[float] = []
    complete = 0
    limits = httpx.Limits(max_connections=readers + 10)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as client:

        async def follow(job_id: str) -> None:
            nonlocal complete
            ids = []
            async with client.stream("GET", f"/api/generations/{job_id}/events") as response:
                connected = time.time()
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        ids.append(int(line[4:]))
                    elif line.startswith("data: "):
                        event = json.loads(line[6:])
                        stamp = (event.get("message") or "").split(" ", 1)[0]
                        if stamp and stamp[0].isdigit() and float(stamp) > connected:
                            lags.append(time.time() - float(stamp))
            complete += ids == list(range(1, len(ids) + 1)) and len(ids) >= ticks

        await asyncio.gather(*(follow(job_ids[i % len(job_ids)]) for i in range(readers)))
    lags.sort()
    return {
        "readers": readers,
        "readers_with_every_event": complete,
        "events_read": len(lags),
        "lag_p50_ms": 1000 * statistics.median(lags),
        "lag_p99_ms": 1000 * lags[int(len(lags) * 0.99) - 1],
        "lag_max_ms": 1000 * lags[-1],
    }


def metric(base: str, sample: str) -> float:
    """One sample of the gateway's /metrics, by its name and labels as written there."""
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


DROPPED = 'gateway_streams_ended_total{reason="stalled"}'


def wake_and_resume(base: str, key: str, job_id: str, sock: socket.socket) -> dict[str, Any]:
    """A stalled client wakes up: what it had been sent, then the rest with Last-Event-ID."""
    sock.settimeout(10)
    raw = b""
    try:
        while (chunk := sock.recv(1 << 16)) and not raw.endswith(b"0\r\n\r\n"):
            raw += chunk
    except (TimeoutError, ConnectionResetError):
        pass  # reset: the kernel gave up on it (TCP_USER_TIMEOUT) and what it held is lost; resumed all the same
    sock.close()
    text = raw.partition(b"\r\n\r\n")[2].decode(errors="replace")
    seen = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    # a cut may leave the last event without its data line: resume after the last whole one
    whole = seen if '"status":"Completed"' in text else seen[:-1]
    last = whole[-1] if whole else 0
    response = httpx.get(
        f"{base}/api/generations/{job_id}/events",
        headers={"Authorization": f"Bearer {key}", "Last-Event-ID": str(last)},
        timeout=60,
    )
    rest = [int(line[4:]) for line in response.text.splitlines() if line.startswith("id: ")]
    ids = whole + rest
    return {
        "bytes_held": len(raw),
        "ids_before_cut": len(whole),
        "every_event_once": ids == list(range(1, len(ids) + 1)),
    }


def kernel_tcp_mib() -> float:
    """The kernel's memory in TCP socket buffers, machine-wide (not in any process's RSS)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * 4096 / 2**20
    return 0.0


def phase(
    proc: Proc, key: str, model: str, jobs: int, readers: int, stalled: int, send_timeout: float
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{proc.port}"
    job_ids = create_jobs(base, key, model, jobs)
    dropped_before = metric(base, DROPPED)
    with watching([proc]) as sample:
        sockets = open_stalled(proc.port, key, job_ids, stalled)
        result = asyncio.run(read_all(base, key, job_ids, readers, MODELS[model][0]))
        sample_rss_held = proc.rss_bytes()
        result["kernel_tcp_mib_at_end"] = kernel_tcp_mib()
    result.update(sample)
    result["rss_at_end_mib"] = sample_rss_held / 2**20
    result["rss_peak_mib"] = result.pop("rss_peak") / 2**20
    result["rss_before_mib"] = result.pop("rss_before") / 2**20
    result["model"] = model
    result["stalled"] = stalled
    if stalled:
        # Every stalled stream ends: with its job when the socket buffers took the whole stream, else
        # dropped after the send timeout once a send blocks — or cut by the kernel when its client has
        # taken nothing for twice that (`gateway serve` sets TCP_USER_TIMEOUT), whichever comes first.
        waited = time.monotonic()
        while metric(base, "gateway_open_streams") > 0 and time.monotonic() < waited + 4 * send_timeout + 30:
            time.sleep(0.5)
        result["stalled_streams_ended_within_s"] = time.monotonic() - waited
        result["streams_still_open"] = metric(base, "gateway_open_streams")
        time.sleep(2 * send_timeout + 2)  # the kernel lets go of the connections (and their buffers)
        result["rss_after_kernel_cut_mib"] = proc.rss_bytes() / 2**20
        result["kernel_tcp_mib_after_kernel_cut"] = kernel_tcp_mib()
    result["dropped_by_send_timeout"] = int(metric(base, DROPPED) - dropped_before)
    if sockets:
        woken = [wake_and_resume(base, key, job_id, sock) for job_id, sock in sockets[:WOKEN]]
        result["woken"] = {
            "clients": len(woken),
            "resumed_with_every_event_once": sum(w["every_event_once"] for w in woken),
            "bytes_held_max": max(w["bytes_held"] for w in woken),
        }
    for _, sock in sockets[WOKEN:]:
        sock.close()
    time.sleep(1)
    result["rss_after_close_mib"] = proc.rss_bytes() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stalled", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--send-timeout", type=float, default=5.0)
    parser.add_argument("--dropped", type=int, default=100, help="stalled clients on jobs too big to buffer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw_stalled_") as tmp:
        env = server_env(Path(tmp), args.send_timeout, args.stalled + args.readers + 100)
        key = create_key(env, 1_000_000)
        proc = gateway_proc(env)
        try:
            idle = proc.rss_bytes() / 2**20
            timeout = args.send_timeout
            baseline = phase(proc, key, "big", args.jobs, args.readers, 0, timeout)
            with_stalled = phase(proc, key, "big", args.jobs, args.readers, args.stalled, timeout)
            dropping = phase(
                proc, key, "huge", max(1, args.jobs // 2), max(1, args.readers // 10), args.dropped, timeout
            )
        finally:
            proc.stop()
    results = {
        "settings": {
            "models": {
                m: dict(zip(("events", "interval_s", "event_bytes"), v, strict=True))
                for m, v in MODELS.items()
            },
            "send_timeout_s": args.send_timeout,
        },
        "rss_idle_mib": idle,
        "baseline": baseline,
        "with_stalled": with_stalled,
        "dropping": dropping,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stalled.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
