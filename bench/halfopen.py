"""Half-open connections beside live streams: `gateway serve` closes the ones that never finish their
request, on time, and the live streams keep every event and their pace.

    .venv/bin/python -m bench.halfopen [--half-open 1000] [--readers 100] [--header-timeout 10]

One `gateway serve` on SQLite with the tick provider ("big" jobs: 60 events of 1 KiB over 30 s). First
`readers` clients follow fresh jobs alone (baseline); then the same beside `half-open` connections that
send a request line and a header and nothing more. Reported: the server's open files (before, at the
peak, and after the header deadline), when the half-open ones were closed (and with what answer), and
for the readers: every event delivered, and how late each live event came (p50 / p99 / max).
Writes `bench/results/halfopen.json`. About a minute and a half; not part of `bench.run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.run import RESULTS, Proc, create_key, gateway_proc
from bench.stalled import create_jobs, read_all, server_env

TICKS = 60  # the "big" model's events


def open_files(proc: Proc) -> int:
    return len(os.listdir(f"/proc/{proc.process.pid}/fd"))


def half_open(port: int, n: int) -> list[socket.socket]:
    """`n` connections that send the start of a request and then nothing."""
    opened = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: bench\r\n")
        opened.append(sock)
    return opened


def closings(socks: list[socket.socket], started: float, within: float) -> dict[str, Any]:
    """When the server closed each connection (seconds from `started`) and what it answered."""
    closed_after: list[float] = []
    answered_408 = 0

    def wait(sock: socket.socket) -> None:
        nonlocal answered_408
        sock.settimeout(within)
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except OSError:
            return
        finally:
            sock.close()
        closed_after.append(time.monotonic() - started)
        answered_408 += data.startswith(b"HTTP/1.1 408")

    threads = [threading.Thread(target=wait, args=(sock,)) for sock in socks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    closed_after.sort()
    return {
        "closed": len(closed_after),
        "answered_408": answered_408,
        "closed_after_s_min": closed_after[0] if closed_after else None,
        "closed_after_s_max": closed_after[-1] if closed_after else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.half_open + 1024)), hard))
    with tempfile.TemporaryDirectory(prefix="gw_halfopen_") as tmp:
        env = server_env(Path(tmp), 30.0, args.half_open + args.readers + 100)
        env["GATEWAY_REQUEST_HEADER_TIMEOUT_SECONDS"] = str(args.header_timeout)
        key = create_key(env, 1_000_000)
        proc = gateway_proc(env)
        base = f"http://127.0.0.1:{proc.port}"
        try:
            before = open_files(proc)
            jobs = create_jobs(base, key, "big", args.readers)
            baseline = asyncio.run(read_all(base, key, jobs, args.readers, TICKS))
            jobs = create_jobs(base, key, "big", args.readers)
            started = time.monotonic()
            socks = half_open(proc.port, args.half_open)
            peak = [open_files(proc)]
            done = threading.Event()

            def sample() -> None:  # the server accepts from its backlog over the next moments
                while not done.wait(0.2):
                    peak.append(open_files(proc))

            sampler = threading.Thread(target=sample)
            sampler.start()
            closed: dict[str, Any] = {}
            watcher = threading.Thread(
                target=lambda: closed.update(closings(socks, started, args.header_timeout + 30))
            )
            watcher.start()
            beside = asyncio.run(read_all(base, key, jobs, args.readers, TICKS))
            watcher.join()
            done.set()
            sampler.join()
            after = open_files(proc)
        finally:
            proc.stop()
    results = {
        "settings": {
            "half_open": args.half_open,
            "readers": args.readers,
            "header_timeout_s": args.header_timeout,
        },
        "open_files": {"before": before, "with_half_open_peak": max(peak), "after": after},
        "half_open": closed,
        "readers_alone": baseline,
        "readers_beside_half_open": beside,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "halfopen.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
