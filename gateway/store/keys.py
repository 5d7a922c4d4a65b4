"""API keys: create (hash only), look up by hash, list, update, revoke."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from gateway.store.db import Database, Tx, stamp
from gateway.store.ledger import append_entry
from gateway.store.records import Row

KEY_PREFIX = "gw_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    balance: int
    models: list[str] | None
    rate_limit_per_minute: int | None
    max_concurrent_jobs: int | None
    revoked_at: str | None
    created_at: str

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "token_balance": self.balance,
            "models": self.models,
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "max_concurrent_jobs": self.max_concurrent_jobs,
            "revoked": self.revoked,
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
        }


def _row_to_key(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        balance=row["balance"],
        models=json.loads(row["models"]) if row["models"] is not None else None,
        rate_limit_per_minute=row["rate_limit_per_minute"],
        max_concurrent_jobs=row["max_concurrent_jobs"],
        revoked_at=row["revoked_at"],
        created_at=row["created_at"],
    )


def new_plain_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plain: str) -> str:
    """Keys carry 256 random bits, so one SHA-256 is enough: no brute force can walk that space."""
    return hashlib.sha256(plain.encode()).hexdigest()


def display_prefix(plain: str) -> str:
    return plain[:10]


async def issue(
    db: Database,
    *,
    name: str,
    tokens: int,
    models: list[str] | None = None,
    rate_limit_per_minute: int | None = None,
    max_concurrent_jobs: int | None = None,
) -> tuple[str, ApiKey]:
    """A new key: its plain text (shown this once; only its hash is kept) and its record."""
    plain = new_plain_key()
    record = await create(
        db,
        key_hash=hash_key(plain),
        prefix=display_prefix(plain),
        name=name,
        tokens=tokens,
        models=models,
        rate_limit_per_minute=rate_limit_per_minute,
        max_concurrent_jobs=max_concurrent_jobs,
    )
    return plain, record


async def create(
    db: Database,
    *,
    key_hash: str,
    prefix: str,
    name: str,
    tokens: int,
    models: list[str] | None = None,
    rate_limit_per_minute: int | None = None,
    max_concurrent_jobs: int | None = None,
) -> ApiKey:
    key_id = "key_" + secrets.token_hex(8)
    created = stamp()

    async def work(tx: Tx) -> None:
        await tx.execute(
            "INSERT INTO api_keys (id, name, key_hash, prefix, balance, models, rate_limit_per_minute,"
            " max_concurrent_jobs, created_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
            (
                key_id,
                name,
                key_hash,
                prefix,
                json.dumps(models) if models is not None else None,
                rate_limit_per_minute,
                max_concurrent_jobs,
                created,
            ),
        )
        if tokens:
            await append_entry(tx, key_id, tokens, "credit", note="initial tokens")

    await db.write(work)
    found = await get(db, key_id)
    assert found is not None
    return found


async def get(db: Database, key_id: str) -> ApiKey | None:
    row = await db.fetchone("SELECT * FROM api_keys WHERE id = ?", (key_id,))
    return _row_to_key(row) if row else None


async def find_active_by_hash(db: Database, key_hash: str) -> ApiKey | None:
    row = await db.fetchone("SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,))
    return _row_to_key(row) if row else None


async def list_all(db: Database) -> list[ApiKey]:
    rows = await db.fetchall("SELECT * FROM api_keys ORDER BY created_at, id")
    return [_row_to_key(r) for r in rows]


UPDATABLE = ("name", "models", "rate_limit_per_minute", "max_concurrent_jobs")


async def update(db: Database, key_id: str, changes: dict[str, Any]) -> ApiKey | None:
    sets = {k: v for k, v in changes.items() if k in UPDATABLE}
    if "models" in sets and sets["models"] is not None:
        sets["models"] = json.dumps(sets["models"])
    if sets:
        assignments = ", ".join(f"{column} = ?" for column in sets)
        values = (*sets.values(), key_id)

        async def work(tx: Tx) -> None:
            await tx.execute(f"UPDATE api_keys SET {assignments} WHERE id = ?", values)

        await db.write(work)
    return await get(db, key_id)


async def revoke(db: Database, key_id: str) -> ApiKey | None:
    moment = stamp()

    async def work(tx: Tx) -> None:
        await tx.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (moment, key_id)
        )

    await db.write(work)
    return await get(db, key_id)
