"""The OpenAPI 3.1 description of the whole contract, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
    "415": error("unsupported_media_type"),
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


# The `code` of a job's `Error` event (and its job object's `error_code`): why the job failed.
JOB_ERROR_CODES = (
    "upstream_failed",
    "upstream_error",
    "upstream_unavailable",
    "upstream_malformed",
    "timeout",
    "result_unavailable",
    "submit_uncertain",
    "provider_unavailable",
    "internal_error",
)
JOB_ERROR_CODE = {
    "type": "string",
    "description": "On an Error event, why the job failed: " + ", ".join(JOB_ERROR_CODES) + ".",
    "examples": list(JOB_ERROR_CODES),
}


def errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in codes}


def ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": json_content(schema)}}


SSE = {
    "description": "Server-sent events: `id: N` and one `data:` line of JSON (an Event) each; `: ping` comments",
    "content": {"text/event-stream": {"schema": {"type": "string"}, "x-event-schema": ref("Event")}},
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
NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["status", "message", "code"],
        "properties": {
            "status": {"const": "Error"},
            "message": {"type": "string"},
            "code": {"type": "string"},
            "required": {"type": "integer"},
            "balance": {"type": "integer"},
            "retry_after": {"type": "integer"},
            "option": {"type": "string"},
        },
    },
    "GenerateRequest": {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string", "examples": ["suno"]},
            "prompt": {"type": "string", "minLength": 1, "maxLength": 2000},
            "style": {"type": "string"},
            "options": {"type": "object", "additionalProperties": True},
            "callback_url": {"type": "string", "format": "uri"},
        },
    },
    "Event": {
        "type": "object",
        "required": ["status", "job_id"],
        "properties": {
            "status": {
                "enum": ["Processing started", "Queued", "Processing", "Completed", "Error", "Canceled"]
            },
            "job_id": {"type": "string"},
            "model": {"type": "string"},
            "cost": {"type": "integer"},
            "balance": {"type": "integer"},
            "position": {"type": "integer", "description": "Queued: the job's place in the gateway's queue"},
            "eta_seconds": {
                "type": "integer",
                "description": "Queued: estimated seconds until the job starts upstream (recent durations)",
            },
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "message": {"type": "string"},
            "preview_url": {
                "type": "string",
                "description": "Processing only, when there is a live preview: a signed, expiring link to "
                "the latest preview frame, or a redirect to an audio stream while it renders.",
            },
            "url": {"type": "string"},
            "urls": {"type": "array", "items": {"type": "string"}},
            "content_type": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
            "code": JOB_ERROR_CODE,
            "refunded": {"type": "boolean"},
        },
    },
    "Job": {
        "type": "object",
        "required": [
            "id",
            "model",
            "prompt",
            "status",
            "cost",
            "refunded",
            "created_at",
            "status_url",
            "events_url",
        ],
        "properties": {
            "id": {"type": "string"},
            "model": {"type": "string"},
            "prompt": {"type": "string"},
            "effective_prompt": {"type": "string"},
            "style": NULLABLE_STR,
            "options": {"type": "object"},
            "status": {"enum": ["queued", "processing", "completed", "failed", "canceled"]},
            "progress": NULLABLE_INT,
            "cost": {
                "type": "integer",
                "description": "What the job costs: the hold until it settles, then the settled price",
            },
            "hold": {
                **NULLABLE_INT,
                "description": "The hold debited at submit when the price settles to what was produced",
            },
            "refunded": {"type": "boolean"},
            "url": NULLABLE_STR,
            "urls": {"type": ["array", "null"], "items": {"type": "string"}},
            "content_type": NULLABLE_STR,
            "error": NULLABLE_STR,
            "error_code": NULLABLE_STR,
            "served_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "completed_at": NULLABLE_STR,
            "expires_at": NULLABLE_STR,
            "status_url": {"type": "string"},
            "events_url": {"type": "string"},
        },
    },
    "JobPage": {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": ref("Job")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "LedgerEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "delta": {"type": "integer"},
            "reason": {"enum": ["debit", "refund", "credit", "adjust", "settle"]},
            "job_id": NULLABLE_STR,
            "balance_after": {"type": "integer"},
            "note": NULLABLE_STR,
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "LedgerPage": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref("LedgerEntry")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "Balance": {
        "type": "object",
        "required": ["token_balance"],
        "properties": {"token_balance": {"type": "integer"}},
    },
    "Quote": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "cost": {"type": "integer", "description": "What the request is debited at submit"},
            "hold": {"type": "boolean", "description": "The cost is a hold, settled to what is produced"},
            "balance": {"type": "integer"},
            "sufficient": {"type": "boolean"},
            "available": {"type": "boolean"},
        },
    },
    "Model": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["audio", "video", "image"]},
            "provider": {"type": "string"},
            "cost": {"type": "integer"},
            "pricing": {"type": ["object", "null"]},
            "styles": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"value": {"type": "string"}, "label": {"type": "string"}},
                },
            },
            "options": {"type": "object"},
            "available": {"type": "boolean"},
        },
    },
    "Account": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "state": {"enum": ["active", "disabled", "probing", "open", "half_open"]},
            "reason": NULLABLE_STR,
            "disabled_at": NULLABLE_STR,
            "next_probe_at": NULLABLE_STR,
            "in_flight": {"type": "integer"},
            "cap": {"type": "integer"},
            "weight": {"type": "number"},
            "calls": {"type": "integer"},
            "error_rate": {"type": ["number", "null"]},
            "latency_ms": NULLABLE_INT,
        },
    },
    "Providers": {
        "type": "object",
        "properties": {"providers": {"type": "array", "items": ref("ProviderHealth")}},
    },
    "Models": {"type": "object", "properties": {"models": {"type": "array", "items": ref("Model")}}},
    "KeyRequest": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tokens": {"type": "integer", "minimum": 0},
            "models": {"type": ["array", "null"], "items": {"type": "string"}},
            "rate_limit_per_minute": NULLABLE_INT,
            "max_concurrent_jobs": NULLABLE_INT,
        },
    },
    "Key": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "key": {"type": "string", "description": "only in the 201 answer"},
            "name": {"type": "string"},
            "prefix": {"type": "string"},
            "token_balance": {"type": "integer"},
            "models": {"type": ["array", "null"], "items": {"type": "string"}},
            "rate_limit_per_minute": NULLABLE_INT,
            "max_concurrent_jobs": NULLABLE_INT,
            "revoked": {"type": "boolean"},
            "revoked_at": NULLABLE_STR,
            "created_at": {"type": "string"},
        },
    },
    "Credit": {
        "type": "object",
        "required": ["tokens"],
        "properties": {"tokens": {"type": "integer"}, "note": {"type": "string"}},
    },
    "UsageGroup": {
        "type": "object",
        "description": "One group: the dimensions asked for in group_by (day, model, key, provider), then the figures",
        "properties": {
            "day": {"type": "string", "format": "date"},
            "model": NULLABLE_STR,
            "key": {"type": "string"},
            "provider": NULLABLE_STR,
            "tokens_debited": {"type": "integer"},
            "tokens_refunded": {"type": "integer"},
            "tokens_settled": {"type": "integer"},
            "tokens_net": {"type": "integer"},
            "jobs": {
                "type": "object",
                "properties": {
                    "completed": {"type": "integer"},
                    "failed": {"type": "integer"},
                    "canceled": {"type": "integer"},
                },
            },
            "duration_mean_seconds": {"type": ["number", "null"]},
            "duration_p95_seconds": {"type": ["number", "null"]},
        },
    },
    "Usage": {
        "type": "object",
        "required": ["from", "to", "group_by", "groups", "totals"],
        "properties": {
            "from": {"type": "string", "format": "date-time"},
            "to": {"type": "string", "format": "date-time"},
            "group_by": {"type": "array", "items": {"enum": ["day", "model", "key", "provider"]}},
            "groups": {"type": "array", "items": ref("UsageGroup")},
            "totals": ref("UsageGroup"),
        },
    },
    "AdminJob": {
        "allOf": [
            ref("Job"),
            {
                "type": "object",
                "properties": {
                    "key_id": {"type": "string"},
                    "provider": {"type": "string"},
                    "upstream_id": NULLABLE_STR,
                    "driven_by": NULLABLE_STR,
                },
            },
        ]
    },
    "AdminJobPage": {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": ref("AdminJob")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "ProviderHealth": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "configured": {"type": "boolean"},
            "state": {"enum": ["closed", "half_open", "open", "unconfigured"]},
            "reason": NULLABLE_STR,
            "retry_after": NULLABLE_INT,
            "in_flight": {"type": "integer"},
            "cap": {"type": "integer"},
            "queued": {"type": "integer"},
            "models": {"type": "array", "items": {"type": "string"}},
            "window_seconds": {"type": "number"},
            "requests": {"type": "integer"},
            "errors": {"type": "integer"},
            "error_rate": {"type": ["number", "null"]},
            "latency_p50_ms": {"type": ["number", "null"]},
            "latency_p95_ms": {"type": ["number", "null"]},
            "accounts": {"type": "array", "items": ref("Account")},
        },
    },
}

NO_AUTH: list[dict[str, Any]] = []
ADMIN: list[dict[str, Any]] = [{"admin": []}]

PATHS: dict[str, Any] = {
    "/api/ping": {
        "get": {
            "summary": "Liveness, AI-Now style",
            "security": NO_AUTH,
            "responses": {
                "200": {"description": "pong", "content": {"text/plain": {"schema": {"const": "pong"}}}}
            },
        }
    },
    "/api/generate": {
        "post": {
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
            "summary": "Create a job without streaming",
            "parameters": [IDEMPOTENCY],
            "requestBody": GENERATE_BODY,
            "responses": {
                **ok("The job", ref("Job"), "202"),
                **errors("400", "401", "403", "409", "413", "415", "418", "429", "503"),
            },
        },
        "get": {
            "summary": "The key's jobs, newest first",
            "parameters": [*PAGING, {"name": "status", "in": "query", "schema": {"type": "string"}}],
            "responses": {**ok("A page of jobs", ref("JobPage")), **errors("400", "401")},
        },
    },
    "/api/generations/{job_id}": {
        "get": {
            "summary": "One job",
            "parameters": [JOB_ID],
            "responses": {**ok("The job", ref("Job")), **errors("401", "404")},
        }
    },
    "/api/generations/{job_id}/cancel": {
        "post": {
            "summary": "Cancel and refund",
            "parameters": [JOB_ID],
            "responses": {**ok("The cancelled job", ref("Job")), **errors("401", "404", "409")},
        }
    },
    "/api/generations/{job_id}/events": {
        "get": {
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
            "summary": "Price a request; debits nothing",
            "requestBody": GENERATE_BODY,
            "responses": {**ok("The quote", ref("Quote")), **errors("400", "401", "403", "413", "415")},
        }
    },
    "/api/balance": {
        "get": {
            "summary": "The key's balance",
            "responses": {**ok("Balance", ref("Balance")), **errors("401")},
        }
    },
    "/api/ledger": {
        "get": {
            "summary": "The key's ledger, newest first",
            "parameters": PAGING,
            "responses": {**ok("A page of entries", ref("LedgerPage")), **errors("400", "401")},
        }
    },
    "/api/models": {
        "get": {
            "summary": "The models this key may use",
            "responses": {**ok("Models", ref("Models")), **errors("401")},
        }
    },
    "/files/{job_id}/{name}": {
        "get": {
            "summary": "A result, by signed link",
            "security": NO_AUTH,
            "parameters": [
                JOB_ID,
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
                "206": {"description": "Part of the file"},
                "307": {"description": "To a presigned S3 URL, or (name `stream`) to the upstream's stream"},
                **errors("403", "404"),
                "410": error("expired"),
            },
        }
    },
    "/admin/keys": {
        "post": {
            "summary": "Create a key (shown once)",
            "security": ADMIN,
            "requestBody": {"required": True, "content": json_content(ref("KeyRequest"))},
            "responses": {**ok("The key", ref("Key"), "201"), **errors("400", "401", "403", "404")},
        },
        "get": {
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
            "summary": "One key",
            "security": ADMIN,
            "parameters": [KEY_ID],
            "responses": {**ok("The key", ref("Key")), **errors("401", "403", "404")},
        },
        "patch": {
            "summary": "Change a key",
            "security": ADMIN,
            "parameters": [KEY_ID],
            "requestBody": {"content": json_content(ref("KeyRequest"))},
            "responses": {**ok("The key", ref("Key")), **errors("400", "401", "403", "404")},
        },
        "delete": {
            "summary": "Revoke a key",
            "security": ADMIN,
            "parameters": [KEY_ID],
            "responses": {**ok("The revoked key", ref("Key")), **errors("401", "403", "404")},
        },
    },
    "/admin/keys/{key_id}/credit": {
        "post": {
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
                **errors("400", "401", "403", "404"),
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
            "responses": {**ok("A page of jobs", ref("AdminJobPage")), **errors("400", "401", "403", "404")},
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
        "get": {"summary": "Process alive", "security": NO_AUTH, "responses": {"200": {"description": "ok"}}}
    },
    "/readyz": {
        "get": {
            "summary": "Database and providers",
            "security": NO_AUTH,
            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
        }
    },
    "/metrics": {
        "get": {
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
            "summary": "This document",
            "security": NO_AUTH,
            "responses": {"200": {"description": "OpenAPI 3.1"}},
        }
    },
    "/": {
        "get": {
            "summary": "The browser playground",
            "security": NO_AUTH,
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
            },
        }
    },
}


def document(server_url: str) -> dict[str, Any]:
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
            "schemas": SCHEMAS,
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
    return JSONResponse(document(request.app.state.services.settings.public_url))
