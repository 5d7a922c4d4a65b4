"""suno-api (the widely used self-hosted server): generate answers two clips, get polls them by id."""

from __future__ import annotations

import re
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from providers.simulator.store import Record
from providers.simulator.timeline import (
    DONE,
    FAILED,
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

PROTOCOL = "suno"
TIMELINE = Timeline((("submitted", 2.0), ("queued", 4.0), ("streaming", 24.0)))
STATUS = {DONE: "complete", FAILED: "error"}
MODEL = "chirp-v3-5"
CLIP_SECONDS = 2.0
WAIT_AUDIO_LIMIT = 100.0
"""suno-api's `wait_audio` gives up after about this many seconds."""
FAILURE = "Simulated failure: the model could not finish this song (sim:fail)."
DIRECTIVE = re.compile(r"\bsim:\w+")


def suno_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_error(status, {"error": message}, headers)


def title_for(prompt: str) -> str:
    words = DIRECTIVE.sub("", prompt).split()[:6]
    return " ".join(words).title() or "Untitled"


def clip(request: Request, sim: Simulator, task: TaskId, record: Record | None) -> dict[str, Any]:
    moment = TIMELINE.at(sim.clock.age(task), fails=task.fails)
    status = STATUS.get(moment.stage, moment.stage)
    record = record or {}
    prompt = str(record.get("prompt", ""))
    instrumental = bool(record.get("instrumental", False))
    return {
        "id": task.text,
        "title": title_for(prompt),
        "image_url": media_url(request, task.text, "png"),
        "lyric": "[Instrumental]" if instrumental else f"[Verse]\n{title_for(prompt)}\n[Chorus]\nla la la",
        "audio_url": media_url(request, task.text, "wav") if status in ("streaming", "complete") else "",
        "video_url": "",
        "created_at": iso(task.created_ms),
        "model_name": MODEL,
        "gpt_description_prompt": prompt,
        "prompt": "",
        "status": status,
        "type": "gen",
        "tags": "simulated",
        "negative_tags": "",
        "duration": CLIP_SECONDS if status == "complete" else None,
        "error_message": FAILURE if status == "error" else None,
    }


def unauthorized(request: Request) -> Response | None:
    """suno-api takes no key unless one is set up in front of it; a refused one answers 401."""
    if credential_refused(request, required=False):
        return suno_error(401, "Unauthorized: invalid API key")
    return None


def routes(sim: Simulator) -> list[BaseRoute]:
    async def generate(request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        body = await read_object(request)
        if body is None:
            return suno_error(400, "Request body must be a JSON object")
        prompt = text_field(body, "prompt")
        if not prompt.strip():
            return suno_error(400, "Prompt is required")
        if refused := sim.refuse(PROTOCOL, prompt, suno_error):
            return refused
        now = sim.clock.now_ms()
        ids = [new_task_id(now, flags_for(prompt)) for _ in range(2)]
        instrumental = body.get("make_instrumental") is True
        await sim.store.remember(ids, PROTOCOL, now, prompt=prompt, instrumental=instrumental)
        await sim.hold_answer(prompt)
        tasks = [task for task in map(parse_task_id, ids) if task is not None]
        if body.get("wait_audio") is True:  # suno-api then answers once the audio streams
            await anyio.sleep(
                min(WAIT_AUDIO_LIMIT, sim.clock.seconds_until(tasks[0], TIMELINE.start_of("streaming")))
            )
        return JSONResponse([clip(request, sim, task, sim.store.record(task.text)) for task in tasks])

    async def get(request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        wanted = [i.strip() for i in request.query_params.get("ids", "").split(",") if i.strip()]
        if not wanted:  # suno-api without ids lists the account's feed
            wanted = [task_id for task_id, _ in reversed(sim.store.records(PROTOCOL))]
        clips = []
        for task_id in wanted:
            task = sim.find(PROTOCOL, task_id)
            if task is None:
                return suno_error(404, f"Clip not found: {task_id}")
            clips.append(clip(request, sim, task, sim.store.record(task_id)))
        return JSONResponse(clips)

    async def get_limit(request: Request) -> Response:
        return unauthorized(request) or JSONResponse(
            {"credits_left": 500, "period": "day", "monthly_limit": 500, "monthly_usage": 0}
        )

    return [
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/get", get, methods=["GET"]),
        Route("/api/get_limit", get_limit, methods=["GET"]),
    ]
