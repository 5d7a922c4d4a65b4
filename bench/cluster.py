"""The shared engines and the processes of a multi-replica bench: a throw-away PostgreSQL database, a Redis
key prefix cleaned up after, the secrets replicas must share, a `gateway simulator` and `gateway demo
--simulator-url` replicas as real processes.

Loopback only: PostgreSQL on 127.0.0.1:5432 (trust auth), Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
POSTGRES_ADMIN_URL = os.environ.get(
    "GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
T = TypeVar("T")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """A process's CPU seconds so far, user and system, from /proc (OSError where it is not there)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(check: Callable[[], T], timeout: float = 60, every: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s")


def sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """One query on its own connection (the bench is synchronous; this is not a hot path)."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


@contextmanager
def postgres_database(prefix: str = "gw_bench_") -> Iterator[str]:
    """A fresh database `<prefix><random>` for the block, its URL yielded, dropped (FORCE) after."""
    name = f"{prefix}{secrets.token_hex(6)}"
    sql(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        sql(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_prefix(prefix: str = "gw_bench_") -> Iterator[str]:
    """A Redis key prefix of the block's own (`<prefix><random>:`); its keys are deleted after."""
    import redis

    value = f"{prefix}{secrets.token_hex(4)}:"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    client.ping()
    try:
        yield value
    finally:
        for found in client.scan_iter(match=value + "*"):
            client.delete(found)
        client.close()


def shared_env(database_url: str, prefix: str, admin_token: str) -> dict[str, str]:
    """What every replica of one cluster must agree on: the engines and the secrets."""
    return {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_ADMIN_TOKEN": admin_token,
        "GATEWAY_URL_SIGNING_KEY": secrets.token_hex(16),
        "GATEWAY_WEBHOOK_SECRET": secrets.token_hex(16),
        "GATEWAY_STREAM_TOKEN_SECRET": secrets.token_hex(16),
    }


def clean_env() -> dict[str, str]:
    """This process's environment without any GATEWAY_ setting (each process gets only what it is given)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


class Simulator:
    """A `gateway simulator` process on a free loopback port; its output goes to a log file."""

    def __init__(self, workdir: Path, speed: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "simulator.log"
        data_dir = workdir / "simulator"
        self.state_dir = data_dir / "simulator"
        """Where `gateway simulator` keeps its tasks (`simulator.json`): its data dir's simulator folder."""
        env = {
            **clean_env(),
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_SIMULATOR__SPEED": speed,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [PY, "-m", "gateway.cli", "simulator", "--port", str(self.port)],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"simulator exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                return httpx.get(self.url + "/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, timeout=30)

    def stop(self) -> None:
        stop_process(self.process)


class DemoReplica:
    """A `gateway demo --simulator-url` process named `name` (its GATEWAY_INSTANCE_ID); log in a file."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.env = {**env, "GATEWAY_INSTANCE_ID": name, "GATEWAY_DATA_DIR": str(workdir / name)}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, simulator_url: str) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [PY, "-m", "gateway.cli", "demo", "--port", str(self.port), "--simulator-url", simulator_url],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.alive:
                raise RuntimeError(
                    f"replica {self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=60)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it has not gone within 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
