"""fal.ai's queue, which serves Pika's models: submit, status (with logs), result and cancel."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from providers.simulator.media import VIDEO_FILE
from providers.simulator.timeline import (
    DONE,
    FAILED,
    TaskId,
    Timeline,
    flags_for,
    iso,
    new_task_id,
)
from providers.simulator.web import (
    Simulator,
    credential_refused,
    media_url,
    mount_url,
    read_object,
    text_field,
)

PROTOCOL = "fal"
TIMELINE = Timeline((("IN_QUEUE", 8.0), ("IN_PROGRESS", 32.0)))
QUEUE_DEPTH = 3
NAMESPACES = ("workflows", "comfy")
"""fal-client's rule: an endpoint id's app is `owner/alias`, or `namespace/owner/alias` for these."""
FAILURE = "Simulated failure: the model could not generate this video (sim:fail)."
CANCELLED = "Request was cancelled"
LOG_LINES = (
    "Loading the model",
    "Encoding the prompt",
    "Generating frames",
    "Decoding frames",
    "Encoding video",
)


def fal_error(status: int, detail: Any, error_type: str, headers: dict[str, str] | None = None) -> Response:
    """fal's error answer: a JSON `detail` and the `x-fal-error-type` header."""
    return JSONResponse(
        {"detail": detail}, status_code=status, headers={"x-fal-error-type": error_type, **(headers or {})}
    )


def refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return fal_error(status, message, "rate_limited" if status == 429 else "internal_error", headers)


def split_app(path: str) -> tuple[str, list[str]] | None:
    """`fal-ai/pika/v2.2/text-to-video` → ("fal-ai/pika", ["v2.2", "text-to-video"])."""
    parts = path.split("/")
    width = 3 if parts[0] in NAMESPACES else 2
    if len(parts) < width or not all(parts[:width]):
        return None
    return "/".join(parts[:width]), parts[width:]


class Queue:
    """One simulated fal queue; every model path shares it."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def urls(self, request: Request, app: str, request_id: str) -> dict[str, str]:
        base = f"{mount_url(request)}/{app}/requests/{request_id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def cancelled(self, task: TaskId) -> bool:
        return self.sim.store.cancelled_at(task.text) is not None

    def logs(self, task: TaskId, age: float) -> list[dict[str, Any]]:
        start = TIMELINE.start_of("IN_PROGRESS")
        span = TIMELINE.total - start
        lines = []
        for i, message in enumerate(LOG_LINES):
            at = start + span * i / len(LOG_LINES)
            if at > age or (task.fails and at >= TIMELINE.fail_age):
                break
            lines.append(
                {
                    "message": message,
                    "level": "INFO",
                    "source": "user",
                    "timestamp": iso(self.sim.clock.wall_ms(task, at)),
                }
            )
        if task.fails and age >= TIMELINE.fail_age:
            when = iso(self.sim.clock.wall_ms(task, TIMELINE.fail_age))
            lines.append({"message": FAILURE, "level": "ERROR", "source": "user", "timestamp": when})
        return lines

    def status(self, request: Request, app: str, task: TaskId, with_logs: bool) -> dict[str, Any]:
        age = self.sim.clock.age(task)
        moment = TIMELINE.at(age, fails=task.fails)
        body: dict[str, Any] = {"request_id": task.text, **self.urls(request, app, task.text)}
        body["logs"] = self.logs(task, age) if with_logs else None
        body["metrics"] = {}
        if self.cancelled(task):
            return {**body, "status": "COMPLETED", "error": CANCELLED, "error_type": "request_cancelled"}
        if moment.stage == "IN_QUEUE":
            return {
                **body,
                "status": "IN_QUEUE",
                "queue_position": min(QUEUE_DEPTH - 1, int((1 - moment.within) * QUEUE_DEPTH)),
            }
        if moment.stage == "IN_PROGRESS":
            return {**body, "status": "IN_PROGRESS"}
        body |= {"status": "COMPLETED", "metrics": {"inference_time": round(TIMELINE.total * 0.8, 3)}}
        if moment.stage == FAILED:
            body |= {"error": FAILURE, "error_type": "generation_failed", "metrics": {}}
        return body

    async def submit(self, request: Request, app: str) -> Response:
        body = await read_object(request)
        if body is None:
            return fal_error(
                422,
                [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}],
                "validation_error",
            )
        prompt = text_field(body, "prompt")
        if not prompt.strip():
            return fal_error(
                422,
                [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}],
                "validation_error",
            )
        if refused := self.sim.refuse(PROTOCOL, prompt, refusal):
            return refused
        now = self.sim.clock.now_ms()
        request_id = new_task_id(now, flags_for(prompt))
        await self.sim.store.remember(
            [request_id], PROTOCOL, now, app=app, endpoint=request.path_params["path"]
        )
        await self.sim.hold_answer(prompt)
        answer: dict[str, Any] = {
            "status": "IN_QUEUE",
            "request_id": request_id,
            **self.urls(request, app, request_id),
            "logs": None,
            "metrics": {},
            "queue_position": QUEUE_DEPTH - 1,
        }
        return JSONResponse(answer, headers={"x-fal-request-id": request_id})

    def result_refusal(self, task: TaskId) -> Response | None:
        """Why `response_url` has no result yet, or None when the video is ready."""
        moment = TIMELINE.at(self.sim.clock.age(task), fails=task.fails)
        if self.cancelled(task):
            return fal_error(400, CANCELLED, "request_cancelled")
        if moment.stage == FAILED:
            return fal_error(422, FAILURE, "generation_failed")
        if moment.stage != DONE:
            return fal_error(400, "Request is still in progress", "request_in_progress")
        return None

    async def cancel(self, task: TaskId) -> Response:
        moment = TIMELINE.at(self.sim.clock.age(task), fails=task.fails)
        if moment.terminal or self.cancelled(task):
            return JSONResponse(
                {"status": "ALREADY_COMPLETED", "detail": "Request already completed"}, status_code=400
            )
        await self.sim.store.cancel(task.text, self.sim.clock.now_ms())
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)


def routes(sim: Simulator) -> list[BaseRoute]:
    queue = Queue(sim)

    async def dispatch(request: Request) -> Response:
        if credential_refused(request, "Key"):
            return fal_error(
                401, "Authentication is required: send Authorization: Key <key>", "authorization_error"
            )
        split = split_app(request.path_params["path"])
        if split is None:
            return fal_error(404, "Application not found", "not_found")
        app, rest = split
        if rest[:1] != ["requests"] or len(rest) < 2:
            if request.method != "POST":
                return fal_error(405, "Method not allowed", "method_not_allowed")
            return await queue.submit(request, app)
        task = sim.find(PROTOCOL, rest[1])
        record = sim.store.record(rest[1]) if task else None
        if task is None or (record is not None and record.get("app") != app):
            return fal_error(404, f"Request {rest[1]} not found", "not_found")
        action = (request.method, "/".join(rest[2:]))
        headers = {"x-fal-request-id": task.text}
        if action == ("GET", "status"):
            with_logs = request.query_params.get("logs", "").lower() in ("1", "true")
            return JSONResponse(queue.status(request, app, task, with_logs), headers=headers)
        if action == ("GET", ""):
            refused = queue.result_refusal(task)
            if refused is not None:
                return refused
            size = (await anyio.Path(VIDEO_FILE).stat()).st_size
            video = {
                "url": media_url(request, task.text, "webm"),
                "content_type": "video/webm",
                "file_name": f"{task.text}.webm",
                "file_size": size,
            }
            return JSONResponse({"video": video, "seed": task.entropy % 2**32}, headers=headers)
        if action == ("PUT", "cancel"):
            return await queue.cancel(task)
        return fal_error(405, "Method not allowed", "method_not_allowed")

    return [Route("/{path:path}", dispatch, methods=["GET", "POST", "PUT"])]
