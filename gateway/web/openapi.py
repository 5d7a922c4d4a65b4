"""The OpenAPI 3.1 description of the whole contract, served at /openapi.json: a table of the paths by
hand; every body's schema generated from gateway/contract's models (see contract/openapi.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.contract.openapi import component_schemas, ref
from gateway.jobs.catalog import Catalog


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": json_content(ref("Error"))}


# Each error status and the codes it carries ("a, b or c (more words)": tests/gateway/test_api_doc reads them).
ERRORS = {
    "400": error("invalid_request, unknown_model, invalid_style or invalid_option"),
    "401": error("unauthorized"),
    "403": error("model_not_allowed or forbidden"),
    "404": error("not_found"),
    "409": error("idempotency_conflict or already_finished"),
    "413": error("payload_too_large"),
    "410": error("expired"),
    "415": error("unsupported_media_type"),
    "416": error("range_not_satisfiable (Content-Range: bytes */size; size field)"),
    "418": error("insufficient_tokens (with required and balance)"),
    "429": error("rate_limited or too_many_jobs (Retry-After header, retry_after field)"),
    "503": error(
        "provider_unavailable or shutting_down (shutting_down: Retry-After header, retry_after field)"
    ),
}
# Creating a job that streams also counts against the open-stream caps.
GENERATE_429 = error(
    "rate_limited, too_many_jobs or too_many_streams (Retry-After header, retry_after field)"
)
STREAM_429 = error("too_many_streams (Retry-After header, retry_after field)")
HTML = {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}

SSE = {
    "description": "Server-sent events: `id: N` and one `data:` line of JSON (an Event) each; `: ping` comments",
    "content": {
        "text/event-stream": {
            # Before OpenAPI 3.2's `itemSchema`, a stream's `schema` describes each event (as
            # schemathesis reads it): an id, and data that is an Event's JSON.
            "schema": {
                "type": "object",
                "required": ["id", "data"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[1-9][0-9]*$"},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": ref("Event"),
                    },
                },
            },
            "x-event-schema": ref("Event"),
        }
    },
}


def path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def query(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    found = {"name": name, "in": "query", "schema": schema, "description": description, "required": required}
    return {k: v for k, v in found.items() if v or k == "schema"}


PAGING = [
    query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
    query("offset", {"type": "integer", "minimum": 0, "default": 0}),
]
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}}
JOB_STATUSES = ["queued", "processing", "completed", "failed", "canceled"]
FILE_PARAMETERS = [
    path("job_id"),
    path("name"),
    query("expires", {"type": "integer"}, required=True),
    query("signature", {"type": "string"}, required=True),
    query(
        "src", {"type": "string"}, "Only for the name `stream` (a live preview): the signed upstream stream"
    ),
    {"name": "Range", "in": "header", "schema": {"type": "string"}},
]
FILE_ANSWERS = {
    "200": {"description": "The file"},
    "206": {"description": "Part of the file (Content-Range)"},
    "307": {"description": "To a presigned S3 URL, or (name `stream`) to the upstream's stream"},
}
USAGE_PARAMETERS = [
    query(
        "from",
        {"type": "string"},
        "the first day: a date or an ISO-8601 time (its day); default 30 days before `to`",
    ),
    query(
        "to",
        {"type": "string"},
        "the last day, included: a date or an ISO-8601 time (midnight excludes its day); default today",
    ),
    query(
        "group_by",
        {"type": "string", "default": "day"},
        "day, model, key or provider, or several joined by commas (day,model)",
    ),
]
ADMIN_JOB_PARAMETERS = [
    *PAGING,
    query("status", {"enum": ["running", *JOB_STATUSES]}),
    query("provider", {"type": "string"}),
    query("key", {"type": "string"}, "a key id (key_…)"),
]
EVENTS_PARAMETERS = [
    path("job_id"),
    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
    query("last_event_id", {"type": "integer"}),
]


# What a client can do next with what an answer names: the stateful fuzzing follows these.
def links(parameter: str, *operations: tuple[str, str]) -> dict[str, Any]:
    """Links that pass the answer's `id` on as `parameter` to each (name, operationId)."""
    return {
        name: {"operationId": operation, "parameters": {parameter: "$response.body#/id"}}
        for name, operation in operations
    }


JOB_LINKS = links(
    "job_id", ("GetJob", "getGeneration"), ("CancelJob", "cancelGeneration"), ("JobEvents", "jobEvents")
)
KEY_LINKS = links(
    "key_id",
    ("GetKey", "getKey"),
    ("UpdateKey", "updateKey"),
    ("CreditKey", "creditKey"),
    ("RevokeKey", "revokeKey"),
)

NO_AUTH: list[dict[str, Any]] = []
ADMIN: list[dict[str, Any]] = [{"admin": []}]
STREAM: list[dict[str, Any]] = [{"bearer": []}, {"streamToken": []}]


@dataclass(frozen=True)
class Op:
    """One operation: its answer is `answer` (a component) with `status`, or the `answers` given whole;
    `errors` are the error statuses it may answer with."""

    method: str
    path: str
    id: str | None
    summary: str
    body: str | None = None
    answer: str | None = None
    description: str = ""
    errors: str = ""
    status: str = "200"
    parameters: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    security: list[dict[str, Any]] | None = None
    body_required: bool = True
    links: dict[str, Any] | None = None


CREATE_ERRORS = "400 401 403 409 413 415 418 503"
ADMIN_ERRORS = "401 403 404"
OPERATIONS = [
    Op("get", "/api/ping", "ping", "Liveness, AI-Now style", security=NO_AUTH,
       answers={"200": {"description": "pong", "content": {"text/plain": {"schema": {"const": "pong"}}}}}),
    Op("post", "/api/generate", "generate", "Create a job and stream its events", body="GenerateRequest",
       parameters=[IDEMPOTENCY], answers={"200": SSE, "429": GENERATE_429}, errors=CREATE_ERRORS),
    Op("post", "/api/generations", "createGeneration", "Create a job without streaming", body="GenerateRequest",
       parameters=[IDEMPOTENCY], answer="Job", description="The job", status="202", links=JOB_LINKS,
       errors=CREATE_ERRORS + " 429"),
    Op("get", "/api/generations", "listGenerations", "The key's jobs, newest first", answer="JobPage",
       description="A page of jobs", parameters=[*PAGING, query("status", {"enum": JOB_STATUSES})], errors="400 401"),
    Op("get", "/api/generations/{job_id}", "getGeneration", "One job", answer="Job", description="The job",
       parameters=[path("job_id")], errors="401 404"),
    Op("post", "/api/generations/{job_id}/cancel", "cancelGeneration", "Cancel and refund", answer="Job",
       description="The cancelled job", parameters=[path("job_id")], errors="401 404 409"),
    Op("get", "/api/generations/{job_id}/events", "jobEvents", "The job's events: replay, then live; resumable",
       security=STREAM, parameters=EVENTS_PARAMETERS, errors="400 401 404",
       answers={"200": SSE, "204": {"description": "Resumed after the terminal event: stop reconnecting"},
                "429": STREAM_429}),
    Op("post", "/api/quote", "quote", "Price a request; debits nothing", body="GenerateRequest", answer="Quote",
       description="The quote", errors="400 401 403 413 415"),
    Op("get", "/api/balance", "balance", "The key's balance", answer="Balance", description="Balance", errors="401"),
    Op("get", "/api/ledger", "ledger", "The key's ledger, newest first", answer="LedgerPage",
       description="A page of entries", parameters=PAGING, errors="400 401"),
    Op("get", "/api/models", "models", "The models this key may use", answer="Models", description="Models",
       errors="401"),
    Op("get", "/files/{job_id}/{name}", "download", "A result, by signed link", security=NO_AUTH,
       parameters=FILE_PARAMETERS, answers=FILE_ANSWERS, errors="400 403 404 410 416"),
    Op("head", "/files/{job_id}/{name}", "downloadHead", "A result, by signed link", security=NO_AUTH,
       parameters=FILE_PARAMETERS, answers=FILE_ANSWERS, errors="400 403 404 410 416"),
    Op("post", "/admin/keys", "createKey", "Create a key (shown once)", security=ADMIN, body="KeyRequest",
       answer="Key", description="The key", status="201", links=KEY_LINKS, errors="400 401 403 404 413 415"),
    Op("get", "/admin/keys", "listKeys", "All keys", security=ADMIN, answer="Keys", description="Keys",
       errors=ADMIN_ERRORS),
    Op("get", "/admin/keys/{key_id}", "getKey", "One key", security=ADMIN, answer="Key", description="The key",
       parameters=[path("key_id")], errors=ADMIN_ERRORS),
    Op("patch", "/admin/keys/{key_id}", "updateKey", "Change a key", security=ADMIN, body="KeyUpdate",
       body_required=False, answer="Key", description="The key", parameters=[path("key_id")],
       errors="400 401 403 404 413 415"),
    Op("delete", "/admin/keys/{key_id}", "revokeKey", "Revoke a key", security=ADMIN, answer="Key",
       description="The revoked key", parameters=[path("key_id")], errors=ADMIN_ERRORS),
    Op("post", "/admin/keys/{key_id}/credit", "creditKey", "Credit (or, negative, take) tokens", security=ADMIN,
       body="Credit", answer="KeyBalance", description="New balance", parameters=[path("key_id")],
       errors="400 401 403 404 413 415"),
    Op("get", "/admin/usage", None, "Tokens and jobs per day, model, key or provider", security=ADMIN,
       answer="Usage", description="Usage", parameters=USAGE_PARAMETERS, errors="400 " + ADMIN_ERRORS),
    Op("get", "/admin/jobs", None, "Live and recent jobs of every key, newest first", security=ADMIN,
       answer="AdminJobPage", description="A page of jobs", parameters=ADMIN_JOB_PARAMETERS,
       errors="400 " + ADMIN_ERRORS),
    Op("get", "/admin/providers", None,
       "Every provider's health (state, slots, recent errors and latency) and its upstream accounts",
       security=ADMIN, answer="Providers", description="The providers", errors=ADMIN_ERRORS),
    Op("get", "/admin", None, "The operator console (its data comes from the admin API, with the admin token)",
       security=NO_AUTH, answers={"200": HTML, "404": error("not_found (no admin token is configured)")}),
    Op("get", "/healthz", "health", "Process alive", security=NO_AUTH, answers={"200": {"description": "ok"}}),
    Op("get", "/readyz", "ready", "Database and providers", security=NO_AUTH,
       answers={"200": {"description": "ready"}, "503": {"description": "not ready"}}),
    Op("get", "/metrics", "metrics", "Prometheus metrics", security=NO_AUTH,
       answers={"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}}),
    Op("get", "/openapi.json", "openapi", "This document", security=NO_AUTH,
       answers={"200": {"description": "OpenAPI 3.1"}}),
    Op("get", "/", "playground", "The browser playground", security=NO_AUTH, answers={"200": HTML}),
]  # fmt: skip


def operation(op: Op) -> dict[str, Any]:
    """The table's row as an OpenAPI operation object."""
    answers: dict[str, Any] = {}
    if op.answer is not None:
        answers[op.status] = {"description": op.description, "content": json_content(ref(op.answer))}
        if op.links:
            answers[op.status]["links"] = op.links
    answers.update(op.answers)
    for status in op.errors.split():
        answers.setdefault(status, ERRORS[status])
    found: dict[str, Any] = {"operationId": op.id, "summary": op.summary, "security": op.security}
    if op.parameters:
        found["parameters"] = op.parameters
    if op.body is not None:
        found["requestBody"] = {"content": json_content(ref(op.body))}
        if op.body_required:
            found["requestBody"]["required"] = True
    found["responses"] = dict(sorted(answers.items()))
    return {k: v for k, v in found.items() if v is not None}


def paths() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for op in OPERATIONS:
        table.setdefault(op.path, {})[op.method] = operation(op)
    return table


@lru_cache(maxsize=8)
def document(server_url: str, catalog: Catalog | None = None) -> dict[str, Any]:
    """The document; with `catalog`, its configured models (options, styles, limits) in the schemas.
    Made once per gateway (generating the schemas takes milliseconds)."""
    schemas = (
        component_schemas(catalog.requests, catalog.key_request, catalog.key_update)
        if catalog is not None
        else component_schemas()
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Media generation gateway",
            "version": "1.0.0",
            "description": "One API key, one token balance, one live progress stream (AI-Now compatible).",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (gw_…)"},
                "admin": {"type": "http", "scheme": "bearer", "description": "The admin token"},
                "streamToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The signed token in a job's events_url",
                },
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    svc = request.app.state.services
    return JSONResponse(document(svc.settings.public_url, svc.catalog))
