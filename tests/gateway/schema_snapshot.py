"""A database's schema as a flat map of named parts, and a comparison that prints what differs.

Used by the migration tests to say that a database upgraded one way has exactly the schema of a fresh
one: tables, columns (type, default, nullability, place), indexes, constraints, triggers and, on
PostgreSQL, the stored functions' definitions.
"""

from __future__ import annotations

import difflib
import sqlite3
from pathlib import Path

import asyncpg


def _normalized(sql: str | None) -> str:
    return " ".join((sql or "").split())


def sqlite_schema(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        parts: dict[str, str] = {"user_version": str(conn.execute("PRAGMA user_version").fetchone()[0])}
        objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        for kind, name, table, sql in objects:
            parts[f"{kind} {name}"] = f"on {table}: {_normalized(sql)}"
            if kind == "table":
                for column in conn.execute(f"PRAGMA table_xinfo('{name}')"):
                    place, column_name, type_, notnull, default, pk, hidden = column
                    parts[f"column {name}.{column_name}"] = (
                        f"#{place} {type_} notnull={notnull} default={default} pk={pk} hidden={hidden}"
                    )
                for key in conn.execute(f"PRAGMA foreign_key_list('{name}')"):
                    parts[f"foreign key {name}#{key[0]}.{key[1]}"] = repr(key[2:])
                for index in conn.execute(f"PRAGMA index_list('{name}')"):
                    _, index_name, unique, origin, partial = index
                    columns = conn.execute(f"PRAGMA index_xinfo('{index_name}')").fetchall()
                    parts[f"index list {name}.{index_name}"] = (
                        f"unique={unique} origin={origin} partial={partial} columns={columns}"
                    )
        return parts
    finally:
        conn.close()


async def postgres_schema(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        parts: dict[str, str] = {}
        for row in await conn.fetch(
            "SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1"
        ):  # the number of the last, not when each ran
            parts["schema version"] = str(row[0])
        for row in await conn.fetch(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public'"
        ):
            parts[f"table {row[0]}"] = row[1]
        for row in await conn.fetch(
            "SELECT table_name, column_name, data_type, column_default, is_nullable, is_identity,"
            " identity_generation, row_number() OVER (PARTITION BY table_name ORDER BY ordinal_position)"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        ):
            parts[f"column {row[0]}.{row[1]}"] = (
                f"#{row[7]} {row[2]} default={row[3]} nullable={row[4]} identity={row[5]} {row[6]}"
            )
        for row in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"):
            parts[f"index {row[0]}"] = row[1]
        for row in await conn.fetch(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), condeferrable, condeferred"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        ):
            parts[f"constraint {row[0]}.{row[1]}"] = f"{row[2]} deferrable={row[3]} deferred={row[4]}"
        for row in await conn.fetch(
            "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled FROM pg_trigger"
            " WHERE NOT tgisinternal"
        ):
            parts[f"trigger {row[0]}.{row[1]}"] = f"{row[2]} enabled={row[3]}"
        for row in await conn.fetch(
            "SELECT oid::regprocedure::text, pg_get_functiondef(oid) FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace"
        ):
            parts[f"function {row[0]}"] = row[1]
        return parts
    finally:
        await conn.close()


def schema_differences(got: dict[str, str], want: dict[str, str]) -> list[str]:
    """What `got` lacks, has more, or has otherwise than `want`, one readable entry each."""
    lines = [f"- missing {name}: {want[name]}" for name in sorted(want.keys() - got.keys())]
    lines += [f"+ extra {name}: {got[name]}" for name in sorted(got.keys() - want.keys())]
    for name in sorted(want.keys() & got.keys()):
        if got[name] != want[name]:
            diff = difflib.unified_diff(
                want[name].splitlines(), got[name].splitlines(), "fresh", "upgraded", lineterm="", n=1
            )
            lines.append(f"~ differs {name}:\n    " + "\n    ".join(diff))
    return lines


def assert_same_schema(got: dict[str, str], want: dict[str, str], what: str) -> None:
    differences = schema_differences(got, want)
    assert not differences, f"{what}: the schema differs from a fresh database's:\n" + "\n".join(differences)
