"""The OpenAPI 3.1 description of the whole contract, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.openapi_schemas import SCHEMAS, ref


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": json_content(ref("Error"))}


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


def errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in codes}


def ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": json_content(schema)}}


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
FILE = {
    "summary": "A result, by signed link",
    "security": [],
    "parameters": [
        {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
        {"name": "signature", "in": "query", "required": True, "schema": {"type": "string"}},
        {
            "name": "src",
            "in": "query",
            "description": "Only for the name `stream` (a live preview): the signed upstream stream",
            "schema": {"type": "string"},
        },
        {"name": "Range", "in": "header", "schema": {"type": "string"}},
    ],
    "responses": {
        "200": {"description": "The file"},
        "206": {"description": "Part of the file (Content-Range)"},
        "307": {"description": "To a presigned S3 URL, or (name `stream`) to the upstream's stream"},
        **errors("400", "403", "404", "410", "416"),
    },
}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
PAGING = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
]
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}}
GENERATE_BODY = {"required": True, "content": json_content(ref("GenerateRequest"))}


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

PATHS: dict[str, Any] = {
    "/api/ping": {
        "get": {
            "operationId": "ping",
            "summary": "Liveness, AI-Now style",
            "security": NO_AUTH,
            "responses": {
                "200": {"description": "pong", "content": {"text/plain": {"schema": {"const": "pong"}}}}
            },
        }
    },
    "/api/generate": {
        "post": {
            "operationId": "generate",
            "summary": "Create a job and stream its events",
            "parameters": [IDEMPOTENCY],
            "requestBody": GENERATE_BODY,
            "responses": {
                "200": SSE,
                **errors("400", "401", "403", "409", "413", "415", "418", "503"),
                "429": GENERATE_429,
            },
        }
    },
    "/api/generations": {
        "post": {
            "operationId": "createGeneration",
            "summary": "Create a job without streaming",
            "parameters": [IDEMPOTENCY],
            "requestBody": GENERATE_BODY,
            "responses": {
                "202": {
                    "description": "The job",
                    "content": json_content(ref("Job")),
                    "links": JOB_LINKS,
                },
                **errors("400", "401", "403", "409", "413", "415", "418", "429", "503"),
            },
        },
        "get": {
            "operationId": "listGenerations",
            "summary": "The key's jobs, newest first",
            "parameters": [
                *PAGING,
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"enum": ["queued", "processing", "completed", "failed", "canceled"]},
                },
            ],
            "responses": {**ok("A page of jobs", ref("JobPage")), **errors("400", "401")},
        },
    },
    "/api/generations/{job_id}": {
        "get": {
            "operationId": "getGeneration",
            "summary": "One job",
            "parameters": [JOB_ID],
            "responses": {**ok("The job", ref("Job")), **errors("401", "404")},
        }
    },
    "/api/generations/{job_id}/cancel": {
        "post": {
            "operationId": "cancelGeneration",
            "summary": "Cancel and refund",
            "parameters": [JOB_ID],
            "responses": {**ok("The cancelled job", ref("Job")), **errors("401", "404", "409")},
        }
    },
    "/api/generations/{job_id}/events": {
        "get": {
            "operationId": "jobEvents",
            "summary": "The job's events: replay, then live; resumable",
            "security": [{"bearer": []}, {"streamToken": []}],
            "parameters": [
                JOB_ID,
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
                {"name": "last_event_id", "in": "query", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": SSE,
                "204": {"description": "Resumed after the terminal event: stop reconnecting"},
                **errors("400", "401", "404"),
                "429": STREAM_429,
            },
        }
    },
    "/api/quote": {
        "post": {
            "operationId": "quote",
            "summary": "Price a request; debits nothing",
            "requestBody": GENERATE_BODY,
            "responses": {**ok("The quote", ref("Quote")), **errors("400", "401", "403", "413", "415")},
        }
    },
    "/api/balance": {
        "get": {
            "operationId": "balance",
            "summary": "The key's balance",
            "responses": {**ok("Balance", ref("Balance")), **errors("401")},
        }
    },
    "/api/ledger": {
        "get": {
            "operationId": "ledger",
            "summary": "The key's ledger, newest first",
            "parameters": PAGING,
            "responses": {**ok("A page of entries", ref("LedgerPage")), **errors("400", "401")},
        }
    },
    "/api/models": {
        "get": {
            "operationId": "models",
            "summary": "The models this key may use",
            "responses": {**ok("Models", ref("Models")), **errors("401")},
        }
    },
    "/files/{job_id}/{name}": {
        "get": {"operationId": "download", **FILE},
        "head": {"operationId": "downloadHead", **FILE},
    },
    "/admin/keys": {
        "post": {
            "operationId": "createKey",
            "summary": "Create a key (shown once)",
            "security": ADMIN,
            "requestBody": {"required": True, "content": json_content(ref("KeyRequest"))},
            "responses": {
                "201": {"description": "The key", "content": json_content(ref("Key")), "links": KEY_LINKS},
                **errors("400", "401", "403", "404", "413", "415"),
            },
        },
        "get": {
            "operationId": "listKeys",
            "summary": "All keys",
            "security": ADMIN,
            "responses": {
                **ok(
                    "Keys",
                    {"type": "object", "properties": {"items": {"type": "array", "items": ref("Key")}}},
                ),
                **errors("401", "403", "404"),
            },
        },
    },
    "/admin/keys/{key_id}": {
        "get": {
            "operationId": "getKey",
            "summary": "One key",
            "security": ADMIN,
            "parameters": [KEY_ID],
            "responses": {**ok("The key", ref("Key")), **errors("401", "403", "404")},
        },
        "patch": {
            "operationId": "updateKey",
            "summary": "Change a key",
            "security": ADMIN,
            "parameters": [KEY_ID],
            "requestBody": {"content": json_content(ref("KeyRequest"))},
            "responses": {**ok("The key", ref("Key")), **errors("400", "401", "403", "404", "413", "415")},
        },
        "delete": {
            "operationId": "revokeKey",
            "summary": "Revoke a key",
            "security": ADMIN,
            "parameters": [KEY_ID],
            "responses": {**ok("The revoked key", ref("Key")), **errors("401", "403", "404")},
        },
    },
    "/admin/keys/{key_id}/credit": {
        "post": {
            "operationId": "creditKey",
            "summary": "Credit (or, negative, take) tokens",
            "security": ADMIN,
            "parameters": [KEY_ID],
            "requestBody": {"required": True, "content": json_content(ref("Credit"))},
            "responses": {
                **ok(
                    "New balance",
                    {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "token_balance": {"type": "integer"}},
                    },
                ),
                **errors("400", "401", "403", "404", "413", "415"),
            },
        }
    },
    "/admin/usage": {
        "get": {
            "summary": "Tokens and jobs per day, model, key or provider",
            "security": ADMIN,
            "parameters": [
                {
                    "name": "from",
                    "in": "query",
                    "description": "the first day: a date or an ISO-8601 time (its day); default 30 days before `to`",
                    "schema": {"type": "string"},
                },
                {
                    "name": "to",
                    "in": "query",
                    "description": "the last day, included: a date or an ISO-8601 time (midnight excludes its day); default today",
                    "schema": {"type": "string"},
                },
                {
                    "name": "group_by",
                    "in": "query",
                    "description": "day, model, key or provider, or several joined by commas (day,model)",
                    "schema": {"type": "string", "default": "day"},
                },
            ],
            "responses": {**ok("Usage", ref("Usage")), **errors("400", "401", "403", "404")},
        }
    },
    "/admin/jobs": {
        "get": {
            "summary": "Live and recent jobs of every key, newest first",
            "security": ADMIN,
            "parameters": [
                *PAGING,
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "enum": ["running", "queued", "processing", "completed", "failed", "canceled"]
                    },
                },
                {"name": "provider", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "key",
                    "in": "query",
                    "description": "a key id (key_…)",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                **ok("A page of jobs", ref("AdminJobPage")),
                **errors("400", "401", "403", "404"),
            },
        }
    },
    "/admin/providers": {
        "get": {
            "summary": "Every provider's health (state, slots, recent errors and latency) and its upstream accounts",
            "security": ADMIN,
            "responses": {**ok("The providers", ref("Providers")), **errors("401", "403", "404")},
        }
    },
    "/admin": {
        "get": {
            "summary": "The operator console (its data comes from the admin API, with the admin token)",
            "security": NO_AUTH,
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                "404": error("not_found (no admin token is configured)"),
            },
        }
    },
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "Process alive",
            "security": NO_AUTH,
            "responses": {"200": {"description": "ok"}},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "ready",
            "summary": "Database and providers",
            "security": NO_AUTH,
            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics",
            "security": NO_AUTH,
            "responses": {
                "200": {
                    "description": "Prometheus text",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": NO_AUTH,
            "responses": {"200": {"description": "OpenAPI 3.1"}},
        }
    },
    "/": {
        "get": {
            "operationId": "playground",
            "summary": "The browser playground",
            "security": NO_AUTH,
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
            },
        }
    },
}


def document(server_url: str, models: list[str] | None = None) -> dict[str, Any]:
    """The document; `models`, when given, are the model ids this gateway knows (an enum on requests)."""
    schemas = SCHEMAS
    if models:
        request = SCHEMAS["GenerateRequest"]
        model = {**request["properties"]["model"], "enum": sorted(models)}
        request = {**request, "properties": {**request["properties"], "model": model}}
        schemas = {**SCHEMAS, "GenerateRequest": request}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Media generation gateway",
            "version": "1.0.0",
            "description": "One API key, one token balance, one live progress stream (AI-Now compatible).",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": PATHS,
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
    settings = request.app.state.services.settings
    return JSONResponse(document(settings.public_url, list(settings.models)))
