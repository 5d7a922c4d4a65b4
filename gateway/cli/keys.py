"""`gateway keys`: API keys created, listed, revoked and credited straight on the database."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from gateway import store
from gateway.contract.refusals import refuse_body
from gateway.contract.requests import key_models
from gateway.settings import Settings
from gateway.store import keys, ledger
from gateway.store.db import Database


async def with_db(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    db = store.connect(settings)
    await db.open()
    try:
        return await work(db)
    finally:
        await db.close()


async def create(settings: Settings, args: argparse.Namespace) -> None:
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    unknown = [m for m in models or [] if m not in settings.models]
    if unknown:
        sys.exit(f"unknown model {unknown[0]!r}; known: {', '.join(settings.models)}")

    body = {
        "name": args.name,
        "tokens": args.tokens,
        "models": models,
        "rate_limit_per_minute": args.rate_limit,
        "max_concurrent_jobs": args.max_jobs,
    }
    request_model, _ = key_models(settings.models)
    try:  # the very checks POST /admin/keys makes, with its messages
        request = request_model.model_validate(body)
    except ValidationError as exc:
        sys.exit(refuse_body(exc, body, request_model).message)

    async def work(db: Database) -> None:
        plain, record = await keys.issue(
            db,
            name=request.name,
            tokens=request.tokens or 0,
            models=request.models,
            rate_limit_per_minute=request.rate_limit_per_minute,
            max_concurrent_jobs=request.max_concurrent_jobs,
        )
        print(json.dumps({"key": plain, **record.public()}, indent=2))
        print("Keep the key now: it is stored hashed and cannot be shown again.", file=sys.stderr)

    await with_db(settings, work)


async def list_keys(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        for key in await keys.list_all(db):
            state = "revoked" if key.revoked else "active"
            print(f"{key.id}  {key.prefix}…  {key.balance:>8} tokens  {state:8}  {key.name}")

    await with_db(settings, work)


async def revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        if await keys.get(db, args.id) is None:
            sys.exit(f"no API key {args.id}")
        await keys.revoke(db, args.id)
        print(f"revoked {args.id}")

    await with_db(settings, work)


async def credit(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        balance = await ledger.credit(db, args.id, args.tokens, args.note)
        print(f"{args.id}: balance {balance}")

    try:
        await with_db(settings, work)
    except Exception as exc:  # NotFound / InvalidRequest carry a sentence for the operator
        sys.exit(getattr(exc, "message", str(exc)))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`gateway keys create|list|revoke|credit`."""
    key_cmd = sub.add_parser("keys", help="manage API keys on the database directly")
    key_sub = key_cmd.add_subparsers(dest="keys_command", required=True)
    create = key_sub.add_parser("create", help="create a key and print it (shown this once)")
    create.add_argument("--name", required=True, help="a label for the key (required)")
    create.add_argument("--tokens", type=int, default=0, help="opening balance (default: 0)")
    create.add_argument("--models", default=None, help="comma-separated allow-list (default: every model)")
    create.add_argument(
        "--rate-limit", type=int, default=None, help="creating requests per minute (default: the gateway's)"
    )
    create.add_argument(
        "--max-jobs", type=int, default=None, help="unfinished jobs at once (default: the gateway's)"
    )
    key_sub.add_parser("list", help="every key, with its balance and state")
    revoke = key_sub.add_parser("revoke", help="revoke a key (its streams end)")
    revoke.add_argument("id", help="the key's id (key_…)")
    credit = key_sub.add_parser("credit", help="add tokens to a key, or take them with a negative number")
    credit.add_argument("id", help="the key's id (key_…)")
    credit.add_argument("tokens", type=int, help="tokens to add (negative: take away)")
    credit.add_argument("--note", default=None, help="a note on the ledger row (default: none)")


COMMANDS = {"create": create, "list": list_keys, "revoke": revoke, "credit": credit}
