"""ComfyUI's API: queue a workflow, follow it on the websocket, read its history, queue and files."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from providers.simulator.comfyui_nodes import object_info, validate_outputs
from providers.simulator.comfyui_run import (
    FALLBACK_WORKFLOW,
    OUTPUT_FILE,
    TIMELINE,
    Event,
    Plan,
    cached_nodes,
    events,
    prompt_text,
    status_messages,
    workflow_problem,
)
from providers.simulator.media import CONTENT_TYPES, Library, ranged
from providers.simulator.store import Record
from providers.simulator.timeline import DONE, FAILED, TaskId, flags_for, new_task_id, parse_task_id
from providers.simulator.web import Simulator, json_error, read_object

PROTOCOL = "comfyui"
TICK = 0.05
"""How often a websocket looks for new events to send."""
LIVE = ("pending", "running")
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 100 * 1024 * 1024}
FAILED_VALIDATION = {
    "type": "prompt_outputs_failed_validation",
    "message": "Prompt outputs failed validation",
    "details": "",
    "extra_info": {},
}


def comfy_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    error = {"type": kind, "message": message, "details": "", "extra_info": {}}
    return json_error(status, {"error": error, "node_errors": {}}, headers)


def refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return comfy_error(status, "rate_limited" if status == 429 else "server_error", message, headers)


class Prompts:
    """Every prompt's state, computed from its id, its remembered workflow and the user's actions."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def workflow(self, task: TaskId) -> dict[str, Any]:
        record = self.sim.store.record(task.text) or {}
        workflow = record.get("workflow")
        return workflow if isinstance(workflow, dict) else FALLBACK_WORKFLOW

    def plan(self, task: TaskId) -> Plan:
        cached = (self.sim.store.record(task.text) or {}).get("cached")
        return Plan.of(task.text, self.workflow(task), cached if isinstance(cached, list) else None)

    def interrupted_age(self, task: TaskId) -> float | None:
        at = self.sim.store.cancelled_at(task.text)
        return None if at is None else self.sim.clock.age(task, at)

    def outcome(self, task: TaskId) -> str:
        """deleted, pending, running, success, error or interrupted."""
        if self.sim.store.is_deleted(task.text):
            return "deleted"
        age = self.sim.clock.age(task)
        interrupted = self.interrupted_age(task)
        if interrupted is not None and interrupted <= age:
            return "interrupted"
        stage = TIMELINE.at(age, fails=task.fails).stage
        return {DONE: "success", FAILED: "error"}.get(stage, stage)

    def events(self, task: TaskId) -> list[Event]:
        if self.sim.store.is_deleted(task.text):
            return []
        return events(self.plan(task), task, self.sim.clock, self.interrupted_age(task))

    def known(self) -> list[tuple[TaskId, Record]]:
        pairs = [(parse_task_id(k), v) for k, v in self.sim.store.records(PROTOCOL)]
        return [(task, record) for task, record in pairs if task is not None]

    def in_state(self, *outcomes: str) -> list[tuple[TaskId, Record]]:
        return [(task, record) for task, record in self.known() if self.outcome(task) in outcomes]

    def queue_item(self, task: TaskId, record: Record) -> list[Any]:
        extra = {"client_id": record.get("client_id")}
        return [record.get("number", 0), task.text, self.workflow(task), extra, list(self.plan(task).outputs)]

    def history(self, task: TaskId) -> dict[str, Any] | None:
        outcome = self.outcome(task)
        if outcome in (*LIVE, "deleted"):
            return None
        plan = self.plan(task)
        success = outcome == "success"
        meta = {
            n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in plan.outputs
        }
        return {
            "prompt": self.queue_item(task, self.sim.store.record(task.text) or {}),
            "outputs": plan.outputs if success else {},
            "status": {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": status_messages(self.events(task)),
            },
            "meta": meta if success else {},
        }

    def queue_remaining(self) -> int:
        return len(self.in_state(*LIVE))


class Follower:
    """One websocket's view: which events of which prompts it has been sent, and the queue size it knows."""

    def __init__(self, prompts: Prompts, client_id: str) -> None:
        self.prompts = prompts
        self.client_id = client_id
        self.sent: dict[str, int] = {}
        self.done: set[str] = set()
        self.remaining = -1
        self.preview_metadata = False
        self.flags_due = False
        """The client sent its feature flags first: the server's own go back."""

    def client_says(self, text: str) -> None:
        """A client's first message may be its feature flags (ComfyUI reads no other)."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            flags = message.get("data")
            self.preview_metadata = isinstance(flags, dict) and flags.get("supports_preview_metadata") is True
            self.flags_due = True

    def _mine(self) -> list[TaskId]:
        # ComfyUI sends a prompt's events to the client that queued it; with no client id, to everyone.
        return [
            task
            for task, record in self.prompts.known()
            if task.text not in self.done and record.get("client_id") in (None, self.client_id)
        ]

    def hello(self) -> dict[str, Any]:
        """The first message: the queue's size and the client's id; from then on only what is new."""
        flags_due = self.flags_due  # a reply to feature flags that came already is still to be sent
        self.due()
        self.flags_due = flags_due
        status = self.status()
        status["data"]["sid"] = self.client_id
        return status

    def status(self) -> dict[str, Any]:
        return {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": self.remaining}}}}

    def due(self) -> list[dict[str, Any] | bytes]:
        messages: list[dict[str, Any] | bytes] = []
        if self.flags_due:
            self.flags_due = False
            messages.append({"type": "feature_flags", "data": SERVER_FEATURES})
        for task in self._mine():
            timeline = self.prompts.events(task)
            age = self.prompts.sim.clock.age(task)
            reached = sum(1 for event in timeline if event.age <= age)
            new = timeline[self.sent.get(task.text, 0) : reached]
            messages.extend(event.message(self.preview_metadata) for event in new)
            self.sent[task.text] = reached
            if reached == len(timeline):
                self.done.add(task.text)
        remaining = self.prompts.queue_remaining()
        if remaining != self.remaining:  # queue changes are broadcast to every client
            self.remaining = remaining
            messages.append(self.status())
        return messages


class Handlers:
    """The HTTP and websocket endpoints, one method each."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.prompts = Prompts(sim)
        self.library = Library()

    async def queue_prompt(self, request: Request) -> Response:
        body = await read_object(request)
        if body is None or "prompt" not in body:
            return comfy_error(400, "no_prompt", "No prompt provided")
        workflow = body["prompt"]
        if problem := workflow_problem(workflow):
            return json_error(400, {"error": problem, "node_errors": {}})
        good, node_errors = validate_outputs(workflow)
        if not good:
            return json_error(400, {"error": FAILED_VALIDATION, "node_errors": node_errors})
        text = prompt_text(workflow)
        if refused := self.sim.refuse(PROTOCOL, text, refusal):
            return refused
        now = self.sim.clock.now_ms()
        prompt_id = new_task_id(now, flags_for(text))
        records = self.sim.store.records(PROTOCOL)
        number = len(records)
        previous = records[-1][1].get("workflow") if records else None
        client_id = body.get("client_id") if isinstance(body.get("client_id"), str) else None
        await self.sim.store.remember(
            [prompt_id],
            PROTOCOL,
            now,
            workflow=workflow,
            client_id=client_id,
            number=number,
            cached=cached_nodes(workflow, previous if isinstance(previous, dict) else None),
        )
        await self.sim.hold_answer(text)
        return JSONResponse({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def object_info(self, request: Request) -> Response:
        return JSONResponse(object_info(request.path_params.get("node_class")))

    async def prompt_info(self, request: Request) -> Response:
        return JSONResponse({"exec_info": {"queue_remaining": self.prompts.queue_remaining()}})

    async def queue(self, request: Request) -> Response:
        if request.method == "GET":
            running = [self.prompts.queue_item(t, r) for t, r in self.prompts.in_state("running")]
            pending = [self.prompts.queue_item(t, r) for t, r in self.prompts.in_state("pending")]
            return JSONResponse({"queue_running": running, "queue_pending": pending})
        body = await read_object(request) or {}
        deletes = body.get("delete")
        wanted = [i for i in deletes if isinstance(i, str)] if isinstance(deletes, list) else []
        for task, _ in self.prompts.in_state("pending"):
            if body.get("clear") is True or task.text in wanted:
                await self.sim.store.delete(task.text, self.sim.clock.now_ms())
        return Response(status_code=200)

    async def interrupt(self, request: Request) -> Response:
        body = await read_object(request) or {}
        only = body.get("prompt_id")
        for task, _ in self.prompts.in_state("running"):
            if only in (None, task.text):
                await self.sim.store.cancel(task.text, self.sim.clock.now_ms())
        return Response(status_code=200)

    async def history_one(self, request: Request) -> Response:
        task = self.sim.find(PROTOCOL, request.path_params["prompt_id"])
        entry = self.prompts.history(task) if task else None
        return JSONResponse({task.text: entry} if task and entry else {})

    async def history_all(self, request: Request) -> Response:
        known = reversed(self.prompts.known())
        entries = {t.text: e for t, _ in known if (e := self.prompts.history(t)) is not None}
        limit = request.query_params.get("max_items", "")
        if limit.isdigit():
            entries = dict(list(entries.items())[: int(limit)])
        return JSONResponse(entries)

    async def view(self, request: Request) -> Response:
        found = OUTPUT_FILE.search(request.query_params.get("filename", ""))
        task = self.sim.find(PROTOCOL, found["id"]) if found else None
        if found is None or task is None or self.prompts.outcome(task) != "success":
            return Response(status_code=404)
        outputs = self.prompts.plan(task).outputs.values()
        if request.query_params["filename"] not in [
            f["filename"] for o in outputs for fs in o.values() for f in fs
        ]:
            return Response(status_code=404)
        extension = found["ext"]
        return ranged(request, await self.library.bytes_for(extension), CONTENT_TYPES[extension])

    async def websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        follower = Follower(self.prompts, websocket.query_params.get("clientId") or uuid.uuid4().hex)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_until_disconnect, websocket, follower, tg.cancel_scope)
            try:
                await websocket.send_json(follower.hello())
                while True:
                    for message in follower.due():
                        if isinstance(message, bytes):
                            await websocket.send_bytes(message)
                        else:
                            await websocket.send_json(message)
                    await anyio.sleep(TICK)
            except WebSocketDisconnect:
                tg.cancel_scope.cancel()


def routes(sim: Simulator) -> list[BaseRoute]:
    handlers = Handlers(sim)
    return [
        Route("/prompt", handlers.queue_prompt, methods=["POST"]),
        Route("/prompt", handlers.prompt_info, methods=["GET"]),
        Route("/queue", handlers.queue, methods=["GET", "POST"]),
        Route("/interrupt", handlers.interrupt, methods=["POST"]),
        Route("/history/{prompt_id}", handlers.history_one, methods=["GET"]),
        Route("/history", handlers.history_all, methods=["GET"]),
        Route("/view", handlers.view, methods=["GET"]),
        Route("/object_info", handlers.object_info, methods=["GET"]),
        Route("/object_info/{node_class}", handlers.object_info, methods=["GET"]),
        WebSocketRoute("/ws", handlers.websocket),
    ]


async def _until_disconnect(websocket: WebSocket, follower: Follower, scope: anyio.CancelScope) -> None:
    """Reads what the client sends (only a first feature-flags message means anything); when it goes
    away, stops the sender too."""
    first = True
    while (message := await websocket.receive())["type"] != "websocket.disconnect":
        if first and message.get("text"):
            follower.client_says(message["text"])
        first = False
    scope.cancel()
