"""A lean load generator (raw asyncio sockets speaking HTTP/1.1), run as its own process.

    python -m bench.loadgen MODE --host 127.0.0.1 --port 8000 --path /api/generate --key gw_… [options]
    python -m bench.loadgen MODE --ports 8001,8002,8003 …   # several replicas, round-robin per connection

Modes: `streams` (hold N event streams to the end), `ttfe` (time to the first event), `create`
(requests per second on a JSON endpoint, keep-alive). Prints one JSON object, including the
client's own CPU seconds, so a saturated client is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from typing import Any

TERMINAL = (b'"status":"Completed"', b'"status":"Error"', b'"status":"Canceled"')


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def port_for(args: argparse.Namespace, index: int) -> int:
    """The port connection `index` goes to: round-robin over `--ports` (one port: always that one)."""
    ports: list[int] = args.ports
    return ports[index % len(ports)]


def request_bytes(args: argparse.Namespace, body: bytes, port: int) -> bytes:
    head = (
        f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if args.key:
        head += f"Authorization: Bearer {args.key}\r\n"
    return head.encode() + b"\r\n" + body


def body_for(args: argparse.Namespace, index: int) -> bytes:
    return json.dumps({"model": args.model, "prompt": f"{args.prompt} #{index}"}).encode()


async def one_stream(args: argparse.Namespace, index: int, lags: list[float], stats: dict[str, int]) -> None:
    port = port_for(args, index)
    reader, writer = await asyncio.open_connection(args.host, port)
    try:
        writer.write(request_bytes(args, body_for(args, index), port))
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            stats["refused"] += 1
            return
        last: float | None = None
        while True:
            line = await reader.readline()
            if not line:
                stats["cut"] += 1
                return
            if line.startswith(b"data: "):
                now = time.perf_counter()
                stats["events"] += 1
                if last is not None:
                    lags.append(max(0.0, now - last - args.interval))
                last = now
                if any(marker in line for marker in TERMINAL):
                    stats["completed"] += 1
                    return
    finally:
        writer.close()


async def first_event(args: argparse.Namespace, index: int) -> float | None:
    started = time.perf_counter()
    port = port_for(args, index)
    reader, writer = await asyncio.open_connection(args.host, port)
    try:
        writer.write(request_bytes(args, body_for(args, index), port))
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return None
            if line.startswith(b"data: "):
                return time.perf_counter() - started
    finally:
        writer.close()


async def create_loop(
    args: argparse.Namespace, client: int, count: int, latencies: list[float], errors: list[int]
) -> None:
    port = port_for(args, client)  # one keep-alive connection per client, clients spread over the ports
    reader, writer = await asyncio.open_connection(args.host, port)
    try:
        for index in range(count):
            started = time.perf_counter()
            writer.write(request_bytes(args, body_for(args, index), port))
            await writer.drain()
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if b" 202 " not in status and b" 200 " not in status:
                errors.append(int(status.split()[1]))
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "mode": args.mode,
        "n": args.n,
        "concurrency": args.concurrency,
        "ports": len(args.ports),
    }
    if args.mode == "streams":
        lags: list[float] = []
        stats = {"events": 0, "completed": 0, "refused": 0, "cut": 0}
        batch = 200  # open connections in waves so the listen backlog never overflows
        tasks = []
        for start in range(0, args.n, batch):
            tasks += [
                asyncio.create_task(one_stream(args, i, lags, stats))
                for i in range(start, min(args.n, start + batch))
            ]
            await asyncio.sleep(0.05)
        _, pending = await asyncio.wait(tasks, timeout=args.deadline)
        for task in pending:  # bounded in time: what has not finished by the deadline counts as lost
            task.cancel()
        result["timed_out"] = len(pending)
        result.update(stats, lag_p50_ms=percentile(lags, 50) * 1000, lag_p99_ms=percentile(lags, 99) * 1000)
    elif args.mode == "ttfe":
        latencies: list[float] = []
        semaphore = asyncio.Semaphore(args.concurrency)

        async def guarded(i: int) -> None:
            async with semaphore:
                value = await first_event(args, i)
                if value is not None:
                    latencies.append(value)

        await asyncio.gather(*(guarded(i) for i in range(args.n)))
        result.update(
            ok=len(latencies),
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            mean_ms=statistics.fmean(latencies) * 1000,
        )
    else:
        latencies = []
        errors: list[int] = []
        per = max(1, args.n // args.concurrency)
        await asyncio.gather(
            *(create_loop(args, client, per, latencies, errors) for client in range(args.concurrency))
        )
        result.update(
            ok=len(latencies) - len(errors),
            errors=len(errors),
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
        )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(wall_s=wall, client_cpu_s=usage.ru_utime + usage.ru_stime)
    if args.mode in ("ttfe", "create"):
        result["rps"] = result["ok"] / wall if wall else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["streams", "ttfe", "create"])
    parser.add_argument("--host", default="127.0.0.1")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", type=int)
    target.add_argument("--ports", help="comma-separated ports, connections spread round-robin over them")
    parser.add_argument("--path", default="/api/generate")
    parser.add_argument("--key", default="")
    parser.add_argument("--model", default="suno")
    parser.add_argument("--prompt", default="bench")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument(
        "--deadline", type=float, default=150.0, help="seconds before open streams are dropped"
    )
    args = parser.parse_args()
    args.ports = [int(p) for p in args.ports.split(",")] if args.ports else [args.port]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
