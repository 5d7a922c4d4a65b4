"""`gateway serve`, `gateway demo` and `gateway simulator`: the servers the command starts, and the demo's key and banner."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import uvicorn

from gateway.app import create_app
from gateway.cli import preflight, serving
from gateway.cli.keys import with_db
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.db import Database

if TYPE_CHECKING:
    from providers.simulator.tls import Certificate

DEMO_TOKENS = 1000


class _QuietServer(uvicorn.Server):
    """A second uvicorn server in the same process must leave signal handling to the first."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    def capture_signals(self) -> Any:  # uvicorn >= 0.29
        import contextlib

        return contextlib.nullcontext()


def settings_for(host: str, port: int, **changes: Any) -> Settings:
    settings = Settings()
    if "public_url" not in settings.model_fields_set:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        changes["public_url"] = f"http://{shown}:{port}"
    return settings.model_copy(update=changes) if changes else settings


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def demo_settings(host: str, port: int, simulator_url: str) -> Settings:
    """Every provider pointed at the loopback simulator, with stand-in credentials."""
    from providers.simulator import PREFIXES

    base = settings_for(host, port)
    speed = base.simulator.speed
    providers = {
        name: config.model_copy(
            update={
                "base_url": simulator_url + PREFIXES[name],
                "base_url_env": None,
                # a faster simulator is polled faster, so a quick demo still shows its progress
                "poll_interval": max(0.1, config.poll_interval / speed)
                if "poll_interval" not in overridden
                else config.poll_interval,
            }
        )
        for name, config in base.providers.items()
        if name in PREFIXES
        for overridden in [_env_overrides(name)]
    }
    return base.model_copy(update={"demo": True, "providers": providers})


def _env_overrides(provider: str) -> set[str]:
    """The provider fields set by GATEWAY_PROVIDERS__<NAME>__<FIELD> variables (they win over scaling)."""
    prefix = f"GATEWAY_PROVIDERS__{provider.upper()}__"
    return {name[len(prefix) :].lower() for name in os.environ if name.upper().startswith(prefix)}


async def serve(settings: Settings, host: str, port: int, log_level: str = "info") -> None:
    await preflight.check(settings)
    await preflight.reach(settings)
    await serving.serve(create_app(settings), settings, host, port, log_level)


async def demo(
    host: str,
    port: int,
    simulator_port: int,
    log_level: str = "info",
    simulator_url: str | None = None,
    tls_simulator: bool = False,
) -> None:
    """The gateway on the simulator: one started in this process, or a running one at `simulator_url`."""
    if simulator_url:  # a shared `gateway simulator`: several demo replicas use the same upstream state
        settings = demo_settings(host, port, simulator_url)
        await preflight.check(settings)
        await preflight.reach(settings)
        plain = await _create_demo_key(settings)
        print(_demo_banner(settings, plain, simulator_url), flush=True)
        await serve(settings, host, port, log_level)
        return

    from providers.simulator.app import server_config

    if not _port_free("127.0.0.1", simulator_port):
        sys.exit(f"the simulator's port {simulator_port} is taken; pass --simulator-port or --simulator-url")
    simulator_url = f"{'https' if tls_simulator else 'http'}://127.0.0.1:{simulator_port}"
    settings = demo_settings(host, port, simulator_url)
    await preflight.check(settings)  # before the simulator starts: a failure is one line, not a task group's
    await preflight.reach(settings)
    state_dir = settings.data_dir / "simulator"
    certificate = _certificate(state_dir, "127.0.0.1") if tls_simulator else None
    if certificate is not None:  # the gateway's own upstream clients trust it the way any client does
        os.environ["SSL_CERT_FILE"] = str(certificate.trust_file)
    simulator = _QuietServer(
        server_config(
            "127.0.0.1",
            simulator_port,
            settings.simulator.speed,
            state_dir,
            certificate,
            log_level="warning",
        )
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(simulator.serve)
        while not simulator.started:
            await anyio.sleep(0.05)
        plain = await _create_demo_key(settings)
        print(_demo_banner(settings, plain, simulator_url), flush=True)
        if certificate is not None:
            print("\n".join(_tls_lines(certificate, simulator_url)) + "\n", flush=True)
        await serve(settings, host, port, log_level)
        simulator.should_exit = True


async def simulator(host: str, port: int, speed: float, state_dir: Path, tls: bool = False) -> None:
    from providers.simulator import serve

    if not _port_free(host, port):
        sys.exit(f"the simulator's port {port} is taken; pass --port")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"{'https' if tls else 'http'}://{shown}:{port}"
    certificate = _certificate(state_dir, host) if tls else None
    print(
        f"gateway simulator: every provider's upstream at {url} (speed ×{speed:g});"
        f" point demos at it with --simulator-url {url}",
        flush=True,
    )
    if certificate is not None:
        print("\n".join(_tls_lines(certificate, url)), flush=True)
    await serve(host, port, speed, state_dir, certificate)


def _certificate(state_dir: Path, host: str) -> Certificate:
    from providers.simulator.tls import ensure_certificate

    return ensure_certificate(state_dir / "tls", host)


def _tls_lines(certificate: Certificate, url: str) -> list[str]:
    """How a client trusts the simulator's certificate, and what fal-client needs besides."""
    from providers.simulator import PREFIXES

    return [
        "  HTTPS with a certificate made for this simulator; clients trust it (and the usual roots) with:",
        f"    export SSL_CERT_FILE={certificate.trust_file.resolve()}",
        f"  fal-client then needs only: export FAL_QUEUE_RUN_HOST={urlsplit(url).netloc}{PREFIXES['pika']}",
    ]


async def _create_demo_key(settings: Settings) -> str:
    async def work(db: Database) -> str:
        plain, _ = await keys.issue(db, name="demo", tokens=DEMO_TOKENS)
        return plain

    plain: str = await with_db(settings, work)
    return plain


def _demo_banner(settings: Settings, plain: str, simulator_url: str) -> str:
    url = settings.public_url
    return "\n".join(
        [
            "",
            f"  gateway demo: every provider answers from the simulator at {simulator_url}",
            f"  (speed ×{settings.simulator.speed:g}"
            + (
                "; GATEWAY_SIMULATOR__SPEED=20 makes it twenty times quicker)"
                if settings.simulator.speed == 1
                else ")"
            ),
            f"  demo API key with {DEMO_TOKENS} tokens (shown once): {plain}",
            "",
            "  try:",
            f"    curl -N {url}/api/generate -H 'Authorization: Bearer {plain}' \\",
            "      -H 'Content-Type: application/json' \\",
            '      -d \'{"model": "suno", "prompt": "an upbeat pop song about summer"}\'',
            "",
        ]
    )
