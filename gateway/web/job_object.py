"""A job as the client sees it: the job object, with its status and events links."""

from __future__ import annotations

from typing import Any

from gateway.jobs.services import Services
from gateway.store.job_records import Job
from gateway.web import auth


def job_object(svc: Services, job: Job) -> dict[str, Any]:
    """The job object, shaped as gateway.contract.responses.Job: built as a dict (a page makes a hundred;
    validating and dumping the model would cost ~15 µs each), and held to the model by the tests."""
    base = svc.settings.public_url.rstrip("/")
    token = auth.stream_token(svc.stream_secret, job.id, svc.settings.stream_token_ttl_seconds)
    return {
        "id": job.id,
        "model": job.model,
        "prompt": job.prompt,
        "effective_prompt": job.effective_prompt,
        "style": job.style,
        "options": job.options,
        "status": job.status,
        "progress": job.progress,
        "cost": job.cost,
        "hold": job.hold,
        "refunded": job.refunded,
        "url": job.url,
        "urls": job.urls,
        "content_type": job.content_type,
        "error": job.error,
        "error_code": job.error_code,
        "served_by": job.served_model,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "completed_at": job.completed_at,
        "expires_at": job.expires_at,
        "status_url": f"{base}/api/generations/{job.id}",
        "events_url": f"{base}/api/generations/{job.id}/events?token={token}",
    }
