"""The `gateway` command: serve, demo, simulator, doctor, key management straight on the database, and
the client commands."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlsplit

import anyio

from gateway.cli import client as cli_client
from gateway.cli import keys, preflight
from gateway.cli.servers import demo, demo_settings, serve, settings_for, simulator
from gateway.settings import Settings

__all__ = ["demo_settings", "main"]


def _doctor(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gateway.upstreams import doctor

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
        cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
        cmd.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
        cmd.add_argument(
            "--log-level",
            default="info",
            choices=["debug", "info", "warning", "error"],
            help="how much to log (default: info)",
        )
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
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8199, help="port to listen on (default: 8199)")
    sim.add_argument(
        "--speed", type=float, default=None, help="speed factor (default: GATEWAY_SIMULATOR__SPEED, else 1)"
    )
    sim.add_argument("--tls", action="store_true", help="serve HTTPS with a certificate kept in the data dir")

    doctor = sub.add_parser("doctor", help="check each configured provider against its upstream")
    doctor.add_argument("providers", nargs="*", help="only these (a named one must be configured)")
    doctor.add_argument(
        "--simulator-url",
        type=_simulator_url,
        default=None,
        help="check the providers as `gateway demo --simulator-url` would point them (a running simulator)",
    )
    doctor.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each upstream (default: 10)"
    )

    cli_client.add_commands(sub)

    keys.add_commands(sub)
    return parser


CLIENT_COMMANDS = ("generate", "balance", "jobs", "cancel")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        sys.exit(cli_client.run(args))
    level = getattr(logging, getattr(args, "log_level", "info").upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        preflight.check_config_file()
        if args.command == "serve":
            anyio.run(serve, settings_for(args.host, args.port), args.host, args.port, args.log_level)
        elif args.command == "demo":
            if args.tls_simulator and args.simulator_url:
                sys.exit("--tls-simulator starts a simulator: it cannot be used with --simulator-url")
            simulator_port = args.simulator_port or args.port + 1
            anyio.run(
                demo,
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
            anyio.run(simulator, args.host, args.port, speed, settings.data_dir / "simulator", args.tls)
        elif args.command == "doctor":
            sys.exit(_doctor(args))
        else:
            anyio.run(keys.COMMANDS[args.keys_command], Settings(), args)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if (line := preflight.explain(exc)) is None:
            raise
        sys.exit(f"gateway: {line}")
