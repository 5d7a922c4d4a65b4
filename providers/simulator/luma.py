"""Luma Dream Machine: video and image generations, created, polled, listed and deleted."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from providers.simulator.timeline import (
    DONE,
    FAILED,
    Flag,
    TaskId,
    Timeline,
    flags_for,
    iso,
    new_task_id,
    parse_task_id,
)
from providers.simulator.web import (
    Simulator,
    credential_refused,
    json_error,
    media_url,
    read_object,
    text_field,
)

PROTOCOL = "luma"
VIDEO = Timeline((("queued", 8.0), ("dreaming", 52.0)))
IMAGE = Timeline((("queued", 3.0), ("dreaming", 12.0)))
STATE = {DONE: "completed", FAILED: "failed"}
MODELS = {"video": ("ray-2", "ray-flash-2", "ray-1-6"), "image": ("photon-1", "photon-flash-1")}
ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
FAILURE = "Simulated failure: the generation could not be completed (sim:fail)."
NOT_FOUND = {"detail": "Generation not found"}
CREDIT_BALANCE = 250_000.0
"""What `GET /credits` reports: lumaai's `credit_balance`, in USD cents."""


def luma_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_error(status, {"detail": message}, headers)


def generation(request: Request, sim: Simulator, task: TaskId) -> dict[str, Any]:
    """The Generation object exactly as lumaai's `Generation` type reads it."""
    image = Flag.VARIANT in task.flags
    moment = (IMAGE if image else VIDEO).at(sim.clock.age(task), fails=task.fails)
    state = STATE.get(moment.stage, moment.stage)
    record = sim.store.record(task.text) or {}
    assets: dict[str, str | None] | None = None
    if state == "dreaming" and not image:
        assets = {"video": None, "image": None, "progress_video": media_url(request, task.text, "webm")}
    elif state == "completed":
        assets = {"video": None if image else media_url(request, task.text, "webm")}
        assets["image"] = media_url(request, task.text, "png")
    return {
        "id": task.text,
        "generation_type": "image" if image else "video",
        "state": state,
        "failure_reason": FAILURE if state == "failed" else None,
        "created_at": iso(task.created_ms),
        "assets": assets,
        "model": record.get("model", MODELS["image" if image else "video"][0]),
        "request": record.get("request"),
    }


def _validate(body: dict[str, Any], kind: str) -> str | None:
    model = body.get("model", MODELS[kind][0])
    if model not in MODELS[kind]:
        return f"Invalid model {model!r} for a {kind} generation; expected one of {', '.join(MODELS[kind])}"
    if "aspect_ratio" in body and body["aspect_ratio"] not in ASPECT_RATIOS:
        return f"Invalid aspect_ratio {body['aspect_ratio']!r}"
    if "loop" in body and not isinstance(body["loop"], bool):
        return "loop must be a boolean"
    if not text_field(body, "prompt").strip() and not (kind == "video" and body.get("keyframes")):
        return "prompt is required"
    return None


def unauthorized(request: Request) -> Response | None:
    if credential_refused(request):
        return json_error(401, {"detail": "Invalid or missing API key: send Authorization: Bearer <key>"})
    return None


class Generations:
    """The endpoints under /generations, one method each."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def create(self, request: Request, kind: str) -> Response:
        if refused := unauthorized(request):
            return refused
        body = await read_object(request)
        if body is None:
            return json_error(400, {"detail": "Request body must be a JSON object"})
        if problem := _validate(body, kind):
            return json_error(400, {"detail": problem})
        prompt = text_field(body, "prompt")
        if refused := self.sim.refuse(PROTOCOL, prompt, luma_error):
            return refused
        now = self.sim.clock.now_ms()
        task_id = new_task_id(now, flags_for(prompt) | (Flag.VARIANT if kind == "image" else Flag.NONE))
        model = body.get("model", MODELS[kind][0])
        echoed = {**{k: v for k, v in body.items() if v is not None}, "generation_type": kind, "model": model}
        await self.sim.store.remember([task_id], PROTOCOL, now, model=model, request=echoed)
        await self.sim.hold_answer(prompt)
        task = parse_task_id(task_id)
        assert task is not None
        return JSONResponse(generation(request, self.sim, task), status_code=201)

    async def create_video(self, request: Request) -> Response:
        return await self.create(request, "video")

    async def create_image(self, request: Request) -> Response:
        return await self.create(request, "image")

    async def create_legacy(self, request: Request) -> Response:
        """The older `POST /generations`: a video unless the body asks for an image."""
        body = await read_object(request)
        return await self.create(
            request, "image" if body and body.get("generation_type") == "image" else "video"
        )

    async def one(self, request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        task = self.sim.find(PROTOCOL, request.path_params["id"])
        if task is None or self.sim.store.is_deleted(task.text):
            return json_error(404, NOT_FOUND)
        if request.method == "DELETE":
            await self.sim.store.delete(task.text, self.sim.clock.now_ms())
            return Response(status_code=204)
        return JSONResponse(generation(request, self.sim, task))

    async def listing(self, request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        try:
            limit = int(request.query_params.get("limit", "10"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return json_error(400, {"detail": "limit and offset must be integers"})
        if not 1 <= limit <= 100 or offset < 0:
            return json_error(400, {"detail": "limit must be 1–100 and offset at least 0"})
        store = self.sim.store
        ids = [i for i, _ in reversed(store.records(PROTOCOL)) if not store.is_deleted(i)]
        tasks = [t for t in map(parse_task_id, ids[offset : offset + limit]) if t is not None]
        generations = [generation(request, self.sim, task) for task in tasks]
        page = {
            "count": len(generations),
            "has_more": offset + limit < len(ids),
            "limit": limit,
            "offset": offset,
        }
        return JSONResponse({"generations": generations, **page})


async def credits(request: Request) -> Response:
    """The account's balance: what a cheap authenticated check (`gateway doctor`) reads."""
    return unauthorized(request) or JSONResponse({"credit_balance": CREDIT_BALANCE})


async def ping(request: Request) -> Response:
    return JSONResponse({"message": "pong"})


def routes(sim: Simulator) -> list[BaseRoute]:
    generations = Generations(sim)
    return [
        Route("/credits", credits, methods=["GET"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/generations/video", generations.create_video, methods=["POST"]),
        Route("/generations/image", generations.create_image, methods=["POST"]),
        Route("/generations", generations.create_legacy, methods=["POST"]),
        Route("/generations", generations.listing, methods=["GET"]),
        Route("/generations/{id}", generations.one, methods=["GET", "DELETE"]),
    ]
