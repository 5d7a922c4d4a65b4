"""The `gateway` commands that talk to a running gateway through the SDK: generate, balance, jobs, cancel."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from gateway_client import (
    AsyncGateway,
    Forbidden,
    GatewayError,
    InsufficientTokens,
    InvalidRequest,
    JobEvent,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    Unauthorized,
)

# Exit codes a script can branch on.
EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_REQUEST, EXIT_AUTH = 0, 1, 2, 3
EXIT_TOKENS, EXIT_RATE_LIMITED, EXIT_UNAVAILABLE, EXIT_OTHER = 4, 5, 6, 7
EXIT_FOR_ERROR: list[tuple[type[GatewayError], int]] = [
    (InvalidRequest, EXIT_BAD_REQUEST),
    (Unauthorized, EXIT_AUTH),
    (Forbidden, EXIT_AUTH),
    (NotFound, EXIT_BAD_REQUEST),
    (InsufficientTokens, EXIT_TOKENS),
    (RateLimited, EXIT_RATE_LIMITED),
    (ProviderUnavailable, EXIT_UNAVAILABLE),
]


def add_commands(sub: Any) -> None:
    gen = sub.add_parser(
        "generate", help="generate media on a running gateway (GATEWAY_URL, GATEWAY_API_KEY)"
    )
    gen.add_argument("prompt", help="what to generate")
    gen.add_argument("--model", required=True, help="one of GET /api/models (required)")
    gen.add_argument("--style", default=None, help="one of the model's style values (default: none)")
    gen.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option; VALUE is read as JSON when it parses (5, true), else as text",
    )
    gen.add_argument("--output", "-o", default=None, help="where to save the result (default: its own name)")
    gen.add_argument("--json", action="store_true", help="print one JSON event per line instead of a bar")
    gen.add_argument(
        "--no-download",
        action="store_true",
        help="do not save the result (its link is in the Completed event)",
    )
    sub.add_parser("balance", help="the key's token balance")
    jobs = sub.add_parser("jobs", help="the key's recent jobs")
    jobs.add_argument("--status", default=None, help="only jobs in this status (default: any)")
    jobs.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    cancel = sub.add_parser("cancel", help="cancel a job (refunded)")
    cancel.add_argument("id", help="the job's id (job_…)")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--option takes KEY=VALUE, not {pair!r}")
        try:
            options[name] = json.loads(text)
        except ValueError:
            options[name] = text
    return options


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        return anyio.run(_dispatch, args, console)
    except GatewayError as exc:
        if getattr(args, "json", False):
            print(
                json.dumps(
                    {"status": "Error", "code": exc.code, "message": exc.message, "http_status": exc.status}
                )
            )
        else:
            console.print(f"[red]{exc.status} {exc.code}[/red]: {exc.message}")
        return next((code for kind, code in EXIT_FOR_ERROR if isinstance(exc, kind)), EXIT_OTHER)
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach the gateway[/red]: {exc!r}")
        return EXIT_OTHER


async def _dispatch(args: argparse.Namespace, console: Console) -> int:
    async with AsyncGateway() as gw:
        if args.command == "balance":
            print(await gw.balance())
        elif args.command == "jobs":
            page = await gw.list(status=args.status, limit=args.limit)
            for job in page["items"]:
                print(
                    f"{job['id']}  {job['status']:10}  {job['model']:6}  {job['cost']:>4}  {job['created_at']}  {job['prompt'][:50]}"
                )
        elif args.command == "cancel":
            job = await gw.cancel(args.id)
            print(f"{job['id']}: {job['status']} (refunded: {str(job['refunded']).lower()})")
        else:
            return await _generate(gw, args, console)
    return EXIT_OK


async def _generate(gw: AsyncGateway, args: argparse.Namespace, console: Console) -> int:
    options = parse_options(args.option)
    stream = gw.generate(args.model, args.prompt, style=args.style, options=options)
    final: JobEvent | None = None
    if args.json:
        async for event in stream:
            print(json.dumps({"id": event.id, **event.data}), flush=True)
            final = event
    else:
        final = await _with_bar(stream, console)
    if final is None or final.status != "Completed":
        if final is not None and not args.json:
            console.print(
                f"[red]{final.status}[/red]: {final.message or ''} (refunded: {final.data.get('refunded')})"
            )
        return EXIT_JOB_FAILED
    if not args.no_download and final.url:
        target = Path(args.output) if args.output else Path(Path(urlsplit(final.url).path).name)
        await gw.download(final.url, target)
        if args.json:
            print(json.dumps({"status": "Downloaded", "path": str(target)}), flush=True)
        else:
            console.print(f"saved [bold]{target}[/bold] ({final.data.get('content_type')})")
    elif not args.json:
        console.print(final.url or "")
    return EXIT_OK


async def _with_bar(stream: Any, console: Console) -> JobEvent | None:
    final: JobEvent | None = None
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("job", total=100, status="Submitting", detail="")
        async for event in stream:
            final = event
            detail = ""
            if event.status == "Processing started":
                detail = f"{event.data.get('cost')} tokens, balance {event.data.get('balance')}"
            elif event.status == "Queued" and event.position is not None:
                detail = f"position {event.position} in queue"
            elif event.message:
                detail = event.message
            completed = event.progress if event.progress is not None else bar.tasks[0].completed
            bar.update(task, completed=completed, status=event.status, detail=detail)
    if final is not None and final.status == "Completed":
        console.print(f"completed in {time.monotonic() - started:.1f}s: {final.url}")
    return final
