"""The SDK's shapes against the served /openapi.json: event statuses and fields, error codes and statuses."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_client import GatewayError, InsufficientTokens, JobEvent, RateLimited, ShuttingDown, Unauthorized
from gateway_client.errors import BY_CODE, BY_STATUS, UNTYPED_CODES, error_class
from gateway_client.events import STATUSES, TERMINAL
from tests.conftest import Harness

pytestmark = pytest.mark.anyio

# Event fields the SDK leaves in `JobEvent.data` (no property of their own): a field the document adds
# must land either on JobEvent or here, so the SDK decides about each one.
DATA_ONLY_FIELDS = frozenset(
    {"model", "cost", "balance", "eta_seconds", "content_type", "expires_at", "code", "refunded", "served_by"}
)
# JobEvent's properties that are worked out from other fields rather than read from one.
DERIVED = frozenset({"terminal"})
CODE = re.compile(r"[a-z][a-z_]*")


async def served_spec(harness: Harness) -> dict[str, Any]:
    response = await harness.client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def variants(spec: dict[str, Any], schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A schema and every schema it is made of ($ref, allOf, oneOf, anyOf), each resolved."""
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    yield schema
    for key in ("allOf", "oneOf", "anyOf"):
        for member in schema.get(key, []):
            yield from variants(spec, member)


def constants(schema: dict[str, Any]) -> set[str]:
    """The values a property schema allows by name: its `enum` or `const`."""
    values = list(schema.get("enum", []))
    if "const" in schema:
        values.append(schema["const"])
    return {str(value) for value in values}


def event_shape(spec: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The statuses and the fields of the document's Event (over all its variants, if it has several)."""
    statuses: set[str] = set()
    fields: set[str] = set()
    for schema in variants(spec, {"$ref": "#/components/schemas/Event"}):
        properties = schema.get("properties", {})
        fields |= set(properties)
        if "status" in properties:
            for status in variants(spec, properties["status"]):
                statuses |= constants(status)
    return statuses, fields


def error_codes(spec: dict[str, Any]) -> set[tuple[int, str]]:
    """Every (HTTP status, error code) the document declares an operation can answer."""
    pairs: set[tuple[int, str]] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if not status.isdigit() or int(status) < 400 or schema is None:
                    continue
                code_schemas = [
                    s["properties"]["code"]
                    for s in variants(spec, schema)
                    if "code" in s.get("properties", {})
                ]
                if not code_schemas:
                    continue  # not an error body
                allowed = set().union(*(constants(c) for s in code_schemas for c in variants(spec, s)))
                # The codes one answer can carry are named in its description ("a, b or c (details)"),
                # which is more precise than the enum of a body shared by every error, when it has one.
                head = response.get("description", "").split("(")[0]
                named = {word.strip() for word in re.split(r",|\bor\b", head) if word.strip()}
                if (
                    named
                    and all(CODE.fullmatch(code) for code in named)
                    and (not allowed or named <= allowed)
                ):
                    codes = named
                else:
                    codes = allowed
                assert codes, f"{method.upper()} {path} {status}: the document names no error codes"
                pairs |= {(int(status), code) for code in codes}
    return pairs


async def test_event_statuses_and_fields_are_the_documents(harness: Harness) -> None:
    statuses, fields = event_shape(await served_spec(harness))
    assert statuses == set(STATUSES)
    assert TERMINAL <= statuses
    known = {f.name for f in dataclasses.fields(JobEvent)} - {"id", "data"}  # id: the SSE id line
    known |= {name for name, value in vars(JobEvent).items() if isinstance(value, property)} - DERIVED
    assert known <= fields, f"JobEvent reads fields the document does not declare: {known - fields}"
    assert not DATA_ONLY_FIELDS & known
    assert fields - known == DATA_ONLY_FIELDS, (
        f"new in the document: {fields - known - DATA_ONLY_FIELDS}; gone from it: {DATA_ONLY_FIELDS - fields}"
    )


async def test_typed_errors_map_the_documents_codes(harness: Harness) -> None:
    pairs = error_codes(await served_spec(harness))
    statuses, codes = {status for status, _ in pairs}, {code for _, code in pairs}
    assert set(BY_STATUS) <= statuses, (
        f"the SDK maps statuses the document has not: {set(BY_STATUS) - statuses}"
    )
    assert set(BY_CODE) <= codes, f"the SDK maps codes the document has not: {set(BY_CODE) - codes}"
    untyped = {(status, code) for status, code in pairs if error_class(status, code) is GatewayError}
    assert {code for _, code in untyped} <= UNTYPED_CODES, (
        f"error codes with no typed error that are not listed as such: {untyped}"
    )
    typed_on_purpose = {(status, code) for status, code in pairs if code in UNTYPED_CODES} - untyped
    assert not typed_on_purpose, f"listed as untyped, but typed: {typed_on_purpose}"


async def test_the_contracts_headline_errors_get_their_own_types(harness: Harness) -> None:
    pairs = error_codes(await served_spec(harness))
    expected = {
        (401, "unauthorized"): Unauthorized,
        (418, "insufficient_tokens"): InsufficientTokens,
        (429, "rate_limited"): RateLimited,
        (503, "shutting_down"): ShuttingDown,
    }
    assert set(expected) <= pairs
    assert {pair: error_class(*pair) for pair in expected} == expected
