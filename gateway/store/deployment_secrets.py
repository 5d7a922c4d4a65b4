"""The secrets a deployment's replicas sign with, agreed through their shared database."""

from __future__ import annotations

import hashlib
import secrets

from gateway.store.db import Database, stamp


class SecretsDisagree(Exception):
    """This replica's setting of a secret is not the one the deployment's other replicas use."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def agree(db: Database, name: str, configured: str | None) -> str:
    """The deployment's value of secret `name`: `configured` when set (the first replica to start records
    its digest, and a replica set otherwise is refused), else one generated once into the database."""
    value = configured or None
    generated = None if value else secrets.token_hex(32)
    offered = value or generated
    assert offered is not None
    await db.write_one(
        "INSERT INTO deployment_secrets (name, value, digest, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING",
        (name, generated, _digest(offered), stamp()),
    )
    row = await db.fetchone("SELECT value, digest FROM deployment_secrets WHERE name = ?", (name,))
    assert row is not None
    if value is not None:
        if row["digest"] != _digest(value):
            raise SecretsDisagree(
                f"GATEWAY_{name.upper()} is set here to a value that is not the deployment's"
                + (
                    " (the other replicas use one generated into the database: unset it here)"
                    if row["value"] is not None
                    else " (set the same value on every replica)"
                )
            )
        return value
    if row["value"] is None:
        raise SecretsDisagree(
            f"GATEWAY_{name.upper()} is set on the deployment's other replicas and not here: set the same value"
        )
    stored: str = row["value"]
    return stored
