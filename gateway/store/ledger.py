"""The ledger: every change of a key's balance is one row, written in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from gateway.contract.errors import InvalidRequest, NotFound
from gateway.store.db import Database, Tx
from gateway.store.records import Reason

# Credits stop here: every JSON client (JavaScript included) holds it exactly, far from BIGINT's end.
MAX_BALANCE = 2**53 - 1


# The conditional UPDATE that decides, so that concurrent writers can never overspend; its parameters:
# the delta, the key, the delta (with a ceiling: the delta, the delta, the ceiling). Then the ledger's row.
CHANGE = "UPDATE api_keys SET balance = balance + ? WHERE id = ? AND balance + ? >= 0 RETURNING balance"
CHANGE_CAPPED = (
    "UPDATE api_keys SET balance = balance + ? WHERE id = ? AND balance + ? >= 0 AND balance + ? <= ?"
    " RETURNING balance"
)
ENTRY = "INSERT INTO ledger (key_id, delta, reason, job_id, balance_after, note, created_at)"


def append_entry(
    tx: Tx,
    key_id: str,
    delta: int,
    reason: Reason,
    *,
    job_id: str | None = None,
    note: str | None = None,
    ceiling: int | None = None,
) -> Coroutine[Any, Any, int | None]:
    """Apply `delta` to the balance and record it; None when the balance would go below zero (or,
    given a `ceiling`, above it).

    One conditional UPDATE decides (`CHANGE`), so concurrent writers can never overspend. Each engine
    writes the row its own way (`Tx.append_entry`); this hands its caller the engine's coroutine.
    """
    return tx.append_entry(key_id, delta, reason, job_id=job_id, note=note, ceiling=ceiling)


async def credit(db: Database, key_id: str, tokens: int, note: str | None = None) -> int:
    """An operator's credit (or, with a negative amount, an adjustment that may not go below zero)."""

    async def work(tx: Tx) -> int:
        exists = await tx.one("SELECT balance FROM api_keys WHERE id = ?", (key_id,))
        if exists is None:
            raise NotFound(f"No API key {key_id}.")
        reason: Reason = "credit" if tokens >= 0 else "adjust"
        balance = await append_entry(tx, key_id, tokens, reason, note=note, ceiling=MAX_BALANCE)
        if balance is None:
            current = await tx.one("SELECT balance FROM api_keys WHERE id = ?", (key_id,))
            now_held = int(current[0]) if current else 0
            where = "below zero" if tokens < 0 else f"past {MAX_BALANCE}"
            raise InvalidRequest(
                f"A change of {tokens} would take the balance ({now_held}) {where}.", balance=now_held
            )
        return balance

    return await db.write(work)


async def balance(db: Database, key_id: str) -> int:
    row = await db.fetchone("SELECT balance FROM api_keys WHERE id = ?", (key_id,))
    return int(row[0]) if row else 0


async def page(db: Database, key_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    rows = await db.fetchall(
        "SELECT id, delta, reason, job_id, balance_after, note, created_at FROM ledger"
        " WHERE key_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
        (key_id, limit, offset),
    )
    total = await db.fetchone("SELECT COUNT(*) FROM ledger WHERE key_id = ?", (key_id,))
    return [dict(r) for r in rows], int(total[0]) if total else 0


async def total(db: Database, key_id: str) -> int:
    row = await db.fetchone("SELECT COALESCE(SUM(delta), 0) FROM ledger WHERE key_id = ?", (key_id,))
    return int(row[0]) if row else 0
