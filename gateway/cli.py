"""The `gateway` command: serve, demo, simulator, and key management straight on the database."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import uvicorn

from gateway import auth, cli_client, preflight, serving, store
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import keys, ledger
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


def _settings_for(host: str, port: int, **changes: Any) -> Settings:
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

    base = _settings_for(host, port)
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


async def _serve(settings: Settings, host: str, port: int, log_level: str = "info") -> None:
    await preflight.check(settings)
    await serving.serve(create_app(settings), settings, host, port, log_level)


async def _demo(
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
        plain = await _create_demo_key(settings)
        print(_demo_banner(settings, plain, simulator_url), flush=True)
        await _serve(settings, host, port, log_level)
        return

    from providers.simulator.app import server_config

    if not _port_free("127.0.0.1", simulator_port):
        sys.exit(f"the simulator's port {simulator_port} is taken; pass --simulator-port or --simulator-url")
    simulator_url = f"{'https' if tls_simulator else 'http'}://127.0.0.1:{simulator_port}"
    settings = demo_settings(host, port, simulator_url)
    await preflight.check(settings)  # before the simulator starts: a failure is one line, not a task group's
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
        await _serve(settings, host, port, log_level)
        simulator.should_exit = True


async def _simulator(host: str, port: int, speed: float, state_dir: Path, tls: bool = False) -> None:
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
        plain = keys.new_plain_key()
        await keys.create(
            db,
            key_hash=auth.hash_key(plain),
            prefix=auth.display_prefix(plain),
            name="demo",
            tokens=DEMO_TOKENS,
        )
        return plain

    plain: str = await _with_db(settings, work)
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


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    db = store.connect(settings)
    await db.open()
    try:
        return await work(db)
    finally:
        await db.close()


# --- keys --------------------------------------------------------------------------------------


async def _keys_create(settings: Settings, args: argparse.Namespace) -> None:
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    unknown = [m for m in models or [] if m not in settings.models]
    if unknown:
        sys.exit(f"unknown model {unknown[0]!r}; known: {', '.join(settings.models)}")

    async def work(db: Database) -> None:
        plain = keys.new_plain_key()
        record = await keys.create(
            db,
            key_hash=auth.hash_key(plain),
            prefix=auth.display_prefix(plain),
            name=args.name,
            tokens=args.tokens,
            models=models,
            rate_limit_per_minute=args.rate_limit,
            max_concurrent_jobs=args.max_jobs,
        )
        print(json.dumps({"key": plain, **record.public()}, indent=2))
        print("Keep the key now: it is stored hashed and cannot be shown again.", file=sys.stderr)

    await _with_db(settings, work)


async def _keys_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        for key in await keys.list_all(db):
            state = "revoked" if key.revoked else "active"
            print(f"{key.id}  {key.prefix}…  {key.balance:>8} tokens  {state:8}  {key.name}")

    await _with_db(settings, work)


async def _keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        if await keys.get(db, args.id) is None:
            sys.exit(f"no API key {args.id}")
        await keys.revoke(db, args.id)
        print(f"revoked {args.id}")

    await _with_db(settings, work)


async def _keys_credit(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        balance = await ledger.credit(db, args.id, args.tokens, args.note)
        print(f"{args.id}: balance {balance}")

    try:
        await _with_db(settings, work)
    except Exception as exc:  # NotFound / InvalidRequest carry a sentence for the operator
        sys.exit(getattr(exc, "message", str(exc)))


def _doctor(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gateway import doctor

    logging.getLogger("httpx").setLevel(logging.WARNING)  # the table says what each request found
    settings = demo_settings("127.0.0.1", 8000, args.simulator_url) if args.simulator_url else Settings()
    unknown = [name for name in args.providers if name not in settings.providers]
    if unknown:
        print(
            f"unknown provider {unknown[0]!r}; configured: {', '.join(settings.providers)}", file=sys.stderr
        )
        return 2
    code: int = anyio.run(doctor.run, settings, args.providers, Console(), args.timeout)
    return code


def _simulator_url(value: str) -> str:
    """An http(s) base URL without its trailing slash (the providers' prefixes are appended to it)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run the gateway"), ("demo", "run the gateway on the built-in simulator")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--host", default="127.0.0.1")
        cmd.add_argument("--port", type=int, default=8000)
        cmd.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        if name == "demo":
            where = cmd.add_mutually_exclusive_group()
            where.add_argument(
                "--simulator-port",
                type=int,
                default=None,
                help="start the simulator here (default: --port + 1)",
            )
            cmd.add_argument(
                "--tls-simulator",
                action="store_true",
                help="serve the simulator over HTTPS (not with --simulator-url)",
            )
            where.add_argument(
                "--simulator-url",
                type=_simulator_url,
                default=None,
                help="use a running `gateway simulator` (e.g. http://127.0.0.1:8199) instead of starting one",
            )
    sim = sub.add_parser("simulator", help="run the upstream simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8199)
    sim.add_argument("--speed", type=float, default=None)
    sim.add_argument("--tls", action="store_true", help="serve HTTPS with a certificate kept in the data dir")

    doctor = sub.add_parser("doctor", help="check each configured provider against its upstream")
    doctor.add_argument("providers", nargs="*", help="only these (a named one must be configured)")
    doctor.add_argument(
        "--simulator-url",
        type=_simulator_url,
        default=None,
        help="check the providers as `gateway demo --simulator-url` would point them (a running simulator)",
    )
    doctor.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each upstream")

    cli_client.add_commands(sub)

    key_cmd = sub.add_parser("keys", help="manage API keys on the database directly")
    key_sub = key_cmd.add_subparsers(dest="keys_command", required=True)
    create = key_sub.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--tokens", type=int, default=0)
    create.add_argument("--models", default=None, help="comma-separated allow-list")
    create.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
    create.add_argument("--max-jobs", type=int, default=None, help="concurrent jobs")
    key_sub.add_parser("list")
    revoke = key_sub.add_parser("revoke")
    revoke.add_argument("id")
    credit = key_sub.add_parser("credit")
    credit.add_argument("id")
    credit.add_argument("tokens", type=int)
    credit.add_argument("--note", default=None)
    return parser


CLIENT_COMMANDS = ("generate", "balance", "jobs", "cancel")
KEY_COMMANDS = {"create": _keys_create, "list": _keys_list, "revoke": _keys_revoke, "credit": _keys_credit}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        sys.exit(cli_client.run(args))
    level = getattr(logging, getattr(args, "log_level", "info").upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        preflight.check_config_file()
        if args.command == "serve":
            anyio.run(_serve, _settings_for(args.host, args.port), args.host, args.port, args.log_level)
        elif args.command == "demo":
            if args.tls_simulator and args.simulator_url:
                sys.exit("--tls-simulator starts a simulator: it cannot be used with --simulator-url")
            simulator_port = args.simulator_port or args.port + 1
            anyio.run(
                _demo,
                args.host,
                args.port,
                simulator_port,
                args.log_level,
                args.simulator_url,
                args.tls_simulator,
            )
        elif args.command == "simulator":
            settings = Settings()
            speed = args.speed if args.speed is not None else settings.simulator.speed
            anyio.run(_simulator, args.host, args.port, speed, settings.data_dir / "simulator", args.tls)
        elif args.command == "doctor":
            sys.exit(_doctor(args))
        else:
            anyio.run(KEY_COMMANDS[args.keys_command], Settings(), args)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if (line := preflight.explain(exc)) is None:
            raise
        sys.exit(f"gateway: {line}")


if __name__ == "__main__":
    main()
