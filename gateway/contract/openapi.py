"""The OpenAPI component schemas, generated from the contract's models (with the configured limits)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.contract import responses
from gateway.contract.errors import ErrorBody
from gateway.contract.events import EVENTS
from gateway.contract.requests import Credit, GenerateRequest, KeyRequest, KeyUpdate

REF = "#/components/schemas/{model}"
# Python names that are not their component's (kept as clients know them).
RENAMED = {"ErrorBody": "Error"}
RESPONSES: tuple[type[BaseModel], ...] = (
    responses.Job,
    responses.JobPage,
    responses.AdminJob,
    responses.AdminJobPage,
    responses.Balance,
    responses.LedgerEntry,
    responses.LedgerPage,
    responses.Quote,
    responses.Model,
    responses.Models,
    responses.Key,
    responses.Keys,
    responses.KeyBalance,
    responses.Usage,
    responses.UsageGroup,
    responses.Account,
    responses.ProviderHealth,
    responses.Providers,
)


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def component_schemas(
    generate: Mapping[str, type[GenerateRequest]] | None = None,
    key_request: type[KeyRequest] = KeyRequest,
    key_update: type[KeyUpdate] = KeyUpdate,
) -> dict[str, Any]:
    """Every body's schema by component name. `generate`: the configured models' GenerateRequest (by
    model id), published as a union on `model`; without them, the shape they share. The key bodies:
    the configuration's (their `models` name its model ids)."""
    requests: list[type[BaseModel]] = [*(generate or {}).values()] or [GenerateRequest]
    models: list[type[BaseModel]] = [
        ErrorBody,
        *EVENTS,
        *RESPONSES,
        key_request,
        key_update,
        Credit,
        *requests,
    ]
    refs, document = models_json_schema([(model, "validation") for model in models], ref_template=REF)
    schemas: dict[str, Any] = _renamed(document["$defs"])
    if generate:
        # Each variant under the name pydantic gave it (two ids that read alike get longer names).
        names = {m: refs[(r, "validation")]["$ref"].rsplit("/", 1)[1] for m, r in generate.items()}
        schemas["GenerateRequest"] = _union("model", names)
    schemas["Event"] = _event(schemas)
    for schema in schemas.values():
        _drop_null_defaults(schema)
    return schemas


def _union(tag: str, variants: Mapping[str, str]) -> dict[str, Any]:
    """One of the `variants` (component names by their `tag` value), told apart by `tag`."""
    return {
        "oneOf": [ref(name) for name in variants.values()],
        "discriminator": {
            "propertyName": tag,
            "mapping": {v: REF.format(model=n) for v, n in variants.items()},
        },
    }


def _event(schemas: dict[str, Any]) -> dict[str, Any]:
    """`Event`: one of the events by `status`, with every field any of them carries listed beside (what
    an SSE client reads without telling the statuses apart)."""
    statuses = {model.model_fields["status"].annotation.__args__[0]: model.__name__ for model in EVENTS}  # type: ignore[union-attr]
    properties: dict[str, Any] = {"status": {"enum": list(statuses)}}
    for name in statuses.values():
        for field, schema in schemas[name]["properties"].items():
            properties.setdefault(field, schema)
    return {
        "type": "object",
        "required": ["status", "job_id"],
        "properties": properties,
        **_union("status", statuses),
    }


def _renamed(schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas under their component names, every reference to them rewritten."""
    text_refs = {REF.format(model=old): REF.format(model=new) for old, new in RENAMED.items()}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: text_refs.get(v, v) if k == "$ref" else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return {RENAMED.get(name, name): walk(schema) for name, schema in schemas.items()}


def _drop_null_defaults(schema: Any) -> None:
    """A field that is left out rather than null (fields.Omittable) publishes no `default: null`."""
    if not isinstance(schema, dict):
        return
    for value in schema.get("properties", {}).values():
        if (
            isinstance(value, dict)
            and "default" in value
            and value["default"] is None
            and not _nullable(value)
        ):
            del value["default"]
    for value in schema.values():
        if isinstance(value, dict):
            _drop_null_defaults(value)


def _nullable(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(_nullable(branch) for branch in schema.get("anyOf", []) if isinstance(branch, dict))
