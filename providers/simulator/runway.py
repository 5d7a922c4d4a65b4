"""Runway's API (version 2024-11-06): text/image to video tasks, polled, cancelled and deleted."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from providers.simulator.runway_models import TEXT_TO_VIDEO, issues_in
from providers.simulator.timeline import (
    DONE,
    FAILED,
    Flag,
    TaskId,
    Timeline,
    flags_for,
    iso,
    new_task_id,
)
from providers.simulator.web import Simulator, credential_refused, json_error, media_url, read_object

PROTOCOL = "run"
API_VERSION = "2024-11-06"
PLAIN = Timeline((("PENDING", 8.0), ("RUNNING", 37.0)))
THROTTLED = Timeline((("PENDING", 3.0), ("THROTTLED", 5.0), ("RUNNING", 37.0)))
"""Some tasks wait for capacity first (one in four, or every `sim:throttle` prompt)."""
STATUS = {DONE: "SUCCEEDED", FAILED: "FAILED"}
FAILURE = "Simulated failure: the video could not be generated (sim:fail)."
FAILURE_CODE = "INTERNAL.BAD_OUTPUT.CODE01"
CREDITS_PER_SECOND = 10
CREDIT_BALANCE = 100_000
"""What `GET /v1/organization` reports as the account's `creditBalance`."""


def runway_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_error(status, {"error": message}, headers)


def timeline_of(task: TaskId) -> Timeline:
    return THROTTLED if Flag.THROTTLE in task.flags else PLAIN


class Tasks:
    """Creating tasks and reading, cancelling or deleting them."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def estimated_credits(self, task: TaskId) -> int:
        record = self.sim.store.record(task.text) or {}
        return int(record.get("duration", 5)) * CREDITS_PER_SECOND

    def status_of(self, task: TaskId) -> tuple[str, float]:
        """The task's status and RUNNING progress; CANCELLED once a cancel landed before the end."""
        timeline = timeline_of(task)
        moment = timeline.at(self.sim.clock.age(task), fails=task.fails)
        if self.sim.store.cancelled_at(task.text) is not None:
            return "CANCELLED", 0.0
        return STATUS.get(moment.stage, moment.stage), moment.within

    def task(self, request: Request, task: TaskId) -> dict[str, Any]:
        """The task exactly as runwayml's `TaskRetrieveResponse` union reads it."""
        status, within = self.status_of(task)
        body: dict[str, Any] = {"id": task.text, "status": status, "createdAt": iso(task.created_ms)}
        credits = self.estimated_credits(task)
        if status in ("PENDING", "THROTTLED", "RUNNING"):
            body["estimatedCost"] = {"credits": credits}
        if status == "RUNNING":
            body["progress"] = round(within, 3)
        elif status == "SUCCEEDED":
            body |= {"cost": {"credits": credits}, "output": [media_url(request, task.text, "webm")]}
        elif status == "FAILED":
            body |= {"cost": {"credits": 0}, "failure": FAILURE, "failureCode": FAILURE_CODE}
        elif status == "CANCELLED":
            cancelled_at = self.sim.store.cancelled_at(task.text)
            moment = timeline_of(task).at(self.sim.clock.age(task, cancelled_at), fails=task.fails)
            body["cost"] = {"credits": credits if moment.stage == "RUNNING" else 0}  # refunded unless running
        return body

    async def create(self, request: Request, image: bool) -> Response:
        body = await read_object(request)
        if body is None:
            return runway_error(400, "Request body must be a JSON object")
        if issues := issues_in(body, image):
            return json_error(400, {"error": "Validation of body failed", "issues": issues})
        prompt = body.get("promptText") or ""
        if refused := self.sim.refuse(PROTOCOL, prompt, runway_error):
            return refused
        now = self.sim.clock.now_ms()
        flags = flags_for(prompt)
        if secrets.randbelow(4) == 0:
            flags |= Flag.THROTTLE
        task_id = new_task_id(now, flags)
        duration = int(body.get("duration", 5))
        await self.sim.store.remember([task_id], PROTOCOL, now, model=body["model"], duration=duration)
        await self.sim.hold_answer(prompt)
        return JSONResponse({"id": task_id, "estimatedCost": {"credits": duration * CREDITS_PER_SECOND}})

    async def cancel_or_delete(self, task: TaskId) -> Response:
        """Cancels a task still under way, deletes a finished one (then it is gone)."""
        status, _ = self.status_of(task)
        now = self.sim.clock.now_ms()
        if status in ("PENDING", "THROTTLED", "RUNNING"):
            await self.sim.store.cancel(task.text, now)
        else:
            await self.sim.store.delete(task.text, now)
        return Response(status_code=204)


def refused(request: Request) -> Response | None:
    """Runway refuses requests without a Bearer key or without the pinned API version."""
    if credential_refused(request):
        return runway_error(401, "Invalid API key: send Authorization: Bearer <key>")
    if request.headers.get("x-runway-version") != API_VERSION:
        return runway_error(400, f"A valid X-Runway-Version header is required (supported: {API_VERSION})")
    return None


def organization_body() -> dict[str, Any]:
    """The account as runwayml's `OrganizationRetrieveResponse` reads it: balance, tier limits, usage."""
    limits = {"maxConcurrentGenerations": 2, "maxDailyGenerations": 200}
    return {
        "creditBalance": CREDIT_BALANCE,
        "tier": {"maxMonthlyCreditSpend": 10_000, "models": dict.fromkeys(TEXT_TO_VIDEO, limits)},
        "usage": {"models": {}},
    }


def routes(sim: Simulator) -> list[BaseRoute]:
    tasks = Tasks(sim)

    async def text_to_video(request: Request) -> Response:
        return refused(request) or await tasks.create(request, image=False)

    async def image_to_video(request: Request) -> Response:
        return refused(request) or await tasks.create(request, image=True)

    async def one(request: Request) -> Response:
        if refusal := refused(request):
            return refusal
        task = sim.find(PROTOCOL, request.path_params["id"])
        if task is None or sim.store.is_deleted(task.text):
            return runway_error(404, "Task not found")
        if request.method == "DELETE":
            return await tasks.cancel_or_delete(task)
        return JSONResponse(tasks.task(request, task))

    async def organization(request: Request) -> Response:
        return refused(request) or JSONResponse(organization_body())

    return [
        Route("/organization", organization, methods=["GET"]),
        Route("/text_to_video", text_to_video, methods=["POST"]),
        Route("/image_to_video", image_to_video, methods=["POST"]),
        Route("/tasks/{id}", one, methods=["GET", "DELETE"]),
    ]
