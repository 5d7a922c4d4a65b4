"""`python -m providers.simulator`: run the upstream simulator on its own."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from providers.simulator.app import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m providers.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument(
        "--speed", type=float, default=1.0, help="1 = realistic timings, 20 = twenty times faster"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="keep cancellations etc. across restarts"
    )
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    try:
        anyio.run(serve, args.host, args.port, args.speed, args.state_dir)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
