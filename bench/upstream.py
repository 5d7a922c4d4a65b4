"""Benchmarks through the simulator: relay overhead (gateway vs polling the simulator directly) and job throughput.

Run by `bench.run`; the simulator is its own process, the gateway another, the clients a third.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

LUMA = "/luma/dream-machine/v1"


async def _direct_job(client: httpx.AsyncClient, base: str, index: int, interval: float) -> int:
    """Submit one luma generation and poll it to the end; count the changes a client would be told of."""
    created = await client.post(
        f"{base}{LUMA}/generations/video",
        json={"prompt": f"bench #{index}", "model": "ray-2"},
        headers={"Authorization": "Bearer bench"},
    )
    generation_id = created.json()["id"]
    changes, last = 0, None
    while True:
        state = (
            await client.get(
                f"{base}{LUMA}/generations/{generation_id}", headers={"Authorization": "Bearer bench"}
            )
        ).json()["state"]
        if state != last:
            changes, last = changes + 1, state
        if state in ("completed", "failed"):
            return changes
        await asyncio.sleep(interval)


async def direct(base: str, n: int, interval: float) -> dict[str, Any]:
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        counts = await asyncio.gather(*(_direct_job(client, base, i, interval) for i in range(n)))
    wall = time.perf_counter() - started
    return {"jobs": n, "changes": sum(counts), "wall_s": wall, "changes_per_s": sum(counts) / wall}


async def throughput(base: str, key: str, n: int, model: str) -> dict[str, Any]:
    """Create `n` jobs, then wait until every one has finished: completed jobs per minute."""
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        semaphore = asyncio.Semaphore(50)

        async def create(index: int) -> None:
            async with semaphore:
                response = await client.post(
                    "/api/generations", json={"model": model, "prompt": f"bench #{index}"}
                )
                response.raise_for_status()

        await asyncio.gather(*(create(i) for i in range(n)))
        deadline = time.monotonic() + 240
        completed = failed = 0
        while time.monotonic() < deadline:
            completed = (
                await client.get("/api/generations", params={"status": "completed", "limit": 1})
            ).json()["total"]
            failed = (await client.get("/api/generations", params={"status": "failed", "limit": 1})).json()[
                "total"
            ]
            if completed + failed >= n:
                break
            await asyncio.sleep(0.2)
    wall = time.perf_counter() - started
    return {
        "jobs": n,
        "completed": completed,
        "failed": failed,
        "wall_s": wall,
        "jobs_per_minute": completed / wall * 60,
    }


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "direct":
        result = asyncio.run(direct(args[0], int(args[1]), float(args[2])))
    else:
        result = asyncio.run(throughput(args[0], args[1], int(args[2]), args[3]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
