"""The OpenAPI schemas of the contract's bodies: errors, requests, jobs, events, keys, ledger."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item: str) -> dict[str, Any]:
    """One page of a list: its items, how many there are in all, and the page's limit and offset."""
    return {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    }


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
            "option": {"type": "string", "description": "the option that was refused"},
            "field": {"type": "string", "description": "the body field that was refused"},
            "limit": {"type": "integer", "description": "the limit the request went over"},
            "style": {"type": "string"},
            "model": {"type": "string"},
            "provider": {"type": "string"},
            "job_status": {"type": ["string", "null"], "description": "with already_finished"},
            "size": {"type": "integer", "description": "the file's size, with range_not_satisfiable"},
        },
    },
    "GenerateRequest": {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string", "examples": ["suno"]},
            "prompt": {"type": "string", "minLength": 1, "maxLength": 2000},
            # null (and an empty string) mean "none", as if the field were left out
            "style": {"type": ["string", "null"]},
            "options": {"type": ["object", "null"], "additionalProperties": True},
            "callback_url": {
                "description": "An absolute http(s) URL on a public address; empty or null means none",
                "anyOf": [{"type": "string", "format": "uri"}, {"const": ""}, {"type": "null"}],
            },
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
    "JobPage": page_of("Job"),
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
    "LedgerPage": page_of("LedgerEntry"),
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
    "AdminJobPage": page_of("AdminJob"),
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
}
