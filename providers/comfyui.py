"""ComfyUI on your own GPU: queue an API-format workflow, follow it over the websocket (or by polling
/history and /queue when there is none), and hand back the saved file's /view URL."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import struct
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import wsproto.events
from httpx_ws import AsyncWebSocketSession, HTTPXWSException, aconnect_ws
from pydantic import BaseModel, RootModel, ValidationError

from providers.base import (
    Changes,
    Failed,
    OptionError,
    Preview,
    Progress,
    ProviderSettings,
    Queued,
    Sleep,
    Submitted,
    Submitting,
    Succeeded,
    Task,
    Update,
    UpstreamClient,
    apply_style_suffix,
    guess_content_type,
    parse,
    poll_pause,
)
from providers.workflows import Workflow

log = logging.getLogger("providers.comfyui")

MAX_SEED = 2**32 - 1
# Polls that find the prompt neither in history nor in the queue before it counts as lost (a ComfyUI
# restart forgets both); more than one, because it can finish between the two reads of one poll.
LOST_AFTER = 3
# The client id a job's prompts are queued with: derived from the job id, so that after a crash
# between queueing and recording the prompt id, /queue and /history tell which prompt is the job's.
CLIENT_ID_NAMESPACE = uuid.UUID("6f1d3a52-1c1e-4b8e-9a57-5d0c2f7e9b31")
# How much of /history a recovery reads (newest first) looking for a job's prompt.
RECOVERY_HISTORY_ITEMS = 500
# The websocket's binary messages (ComfyUI's protocol.py BinaryEventTypes): a 4-byte big-endian type,
# then for PREVIEW_IMAGE a 4-byte image format (1 JPEG, 2 PNG) and the image, and for
# PREVIEW_IMAGE_WITH_METADATA a 4-byte length, that much JSON (`image_type`, `prompt_id` …) and the image.
PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}
MAX_PREVIEW_BYTES = 2 << 20


# --- ComfyUI's answers -------------------------------------------------------------------------


class Accepted(BaseModel):
    prompt_id: str
    number: float | None = None
    node_errors: Any = None


class OutputFile(BaseModel):
    filename: str
    subfolder: str = ""
    type: str = "output"


class NodeOutput(BaseModel):
    images: list[OutputFile] = []
    gifs: list[OutputFile] = []


class HistoryStatus(BaseModel):
    status_str: str | None = None
    completed: bool | None = None
    messages: list[tuple[str, dict[str, Any]]] = []


class HistoryEntry(BaseModel):
    prompt: list[Any] = []
    """`[number, prompt_id, prompt, extra_data, outputs_to_execute]`, as queued."""
    outputs: dict[str, NodeOutput] = {}
    status: HistoryStatus | None = None


History = RootModel[dict[str, HistoryEntry]]


class QueueState(BaseModel):
    """Each item is `[number, prompt_id, prompt, extra_data, outputs_to_execute]`."""

    queue_running: list[list[Any]] = []
    queue_pending: list[list[Any]] = []


class Message(BaseModel):
    type: str
    data: dict[str, Any] = {}


# --- reading them ------------------------------------------------------------------------------


def client_id_for(job_id: str) -> str:
    return uuid.uuid5(CLIENT_ID_NAMESPACE, job_id).hex


def _queued_by(item: list[Any], client_id: str) -> bool:
    """Whether a queue item (or a history entry's `prompt`) was queued with this client id: ComfyUI
    keeps the `client_id` of the POST in the item's `extra_data`."""
    return len(item) > 3 and isinstance(item[3], dict) and item[3].get("client_id") == client_id


def _listed(items: list[list[Any]], prompt_id: str) -> bool:
    return any(len(item) > 1 and item[1] == prompt_id for item in items)


def _where(queue: QueueState, prompt_id: str) -> Queued | Progress | None:
    """Where the prompt is: running, waiting (position 1 = next), or in neither list."""
    if _listed(queue.queue_running, prompt_id):
        return Progress(None, "running")
    pending = [item for item in queue.queue_pending if len(item) > 1]
    pending.sort(key=lambda item: item[0] if isinstance(item[0], int | float) else 0)
    for index, item in enumerate(pending):
        if item[1] == prompt_id:
            return Queued(index + 1)
    return None


def _execution_error(data: Mapping[str, Any]) -> str:
    node = data.get("node_type") or data.get("node_id") or "a node"
    reason = " ".join(str(data.get("exception_message") or "no reason given").split())
    return f"ComfyUI failed in {node}: {reason}"[:300]


def _history_failure(status: HistoryStatus) -> str:
    for name, data in status.messages:
        if name == "execution_error":
            return _execution_error(data)
        if name == "execution_interrupted":
            return "The prompt was interrupted on the ComfyUI server."
    return "ComfyUI reported the prompt failed."


def _node_errors(node_errors: Any) -> list[str]:
    """Each refused node's reasons from a `node_errors` object, as `<class> #<id>: <message> (<details>)`."""
    parts = []
    for node_id, node in node_errors.items() if isinstance(node_errors, dict) else ():
        for item in node.get("errors") or [] if isinstance(node, dict) else ():
            if isinstance(item, dict):
                detail = f" ({item['details']})" if item.get("details") else ""
                parts.append(f"{node.get('class_type', 'node')} #{node_id}: {item.get('message')}{detail}")
    return parts


def _skipped(node_errors: Any) -> str | None:
    """A 200 from POST /prompt may still refuse some outputs (and run the others): say which."""
    parts = _node_errors(node_errors)
    if not parts:
        return None
    text = "; ".join(" ".join(part.split()) for part in parts)
    return f"ComfyUI skipped part of the workflow: {text}"[:300]


def preview_frame(data: bytes, prompt_id: str | None) -> Preview | None:
    """The image in a binary websocket message, if it is a preview of this prompt (a preview without
    metadata comes only to the client that queued the prompt, so it is ours)."""
    if len(data) < 8:
        return None
    kind, word = struct.unpack(">II", data[:8])
    if kind == PREVIEW_IMAGE:
        content_type, image = IMAGE_FORMATS.get(word), data[8:]
    elif kind == PREVIEW_IMAGE_WITH_METADATA:
        try:
            metadata = json.loads(data[8 : 8 + word])
        except ValueError:
            return None
        if not isinstance(metadata, dict) or metadata.get("prompt_id", prompt_id) != prompt_id:
            return None
        content_type, image = metadata.get("image_type"), data[8 + word :]
    else:
        return None  # text from a node, or an unencoded image
    if content_type not in IMAGE_FORMATS.values() or not image or len(image) > MAX_PREVIEW_BYTES:
        return None
    return Preview(str(content_type), bytes(image))


def _rejection(response: httpx.Response) -> str:
    """The reason in a 400 from POST /prompt: its `error`, then each node's `node_errors`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"ComfyUI refused the workflow: {response.text.strip()[:200] or response.reason_phrase}"
    error = body.get("error")
    if isinstance(error, dict):
        error = ": ".join(
            str(part) for part in (error.get("message") or error.get("type"), error.get("details")) if part
        )
    parts = [str(error)] if error else []
    parts.extend(_node_errors(body.get("node_errors")))
    text = "; ".join(" ".join(part.split()) for part in parts)
    return f"ComfyUI refused the workflow: {text or 'no reason given'}"[:300]


@contextlib.contextmanager
def _unwrapped() -> Iterator[None]:
    """httpx-ws runs its session in a task group, which wraps whatever leaves the session (our own
    errors, and GeneratorExit when the job's generator is closed) in an exception group: hand on the
    one exception inside, so callers see what they would without the websocket.

    Updates are yielded from inside that task group, so its one background task (the receiver; the
    keepalive pinger is off) must not fail: httpx-ws turns read errors into a dropped-socket message,
    which is why only a protocol violation by the server could cancel the runner mid-update."""
    try:
        yield
    except BaseExceptionGroup as group:
        inner: BaseException = group
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        raise inner from None


# --- the adapter -------------------------------------------------------------------------------


@dataclass
class _Prompt:
    """One job's prompt upstream. The websocket only talks to the client id that queued the prompt,
    so the upstream id keeps both: `<prompt_id>@<client_id>`."""

    client_id: str
    prompt_id: str | None = None
    started: bool = False
    changes: Changes = field(default_factory=Changes)
    skipped: str | None = None
    """What POST /prompt refused while accepting the rest (its `node_errors`)."""
    cached: set[str] = field(default_factory=set)

    @classmethod
    def from_upstream_id(cls, upstream_id: str) -> _Prompt:
        prompt_id, _, client_id = upstream_id.partition("@")
        return cls(client_id=client_id or uuid.uuid4().hex, prompt_id=prompt_id)


class ComfyUIProvider:
    name = "local"

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
        self.client = UpstreamClient(settings, headers, **kwargs)
        self.workflow = Workflow.load(settings.extra)
        self.websocket = bool(settings.extra.get("websocket", True))
        # Without a word on the websocket for this long, look at /history: a message may have been missed.
        self.idle_seconds = float(settings.extra.get("ws_idle_seconds", 10.0))
        self.base_url = settings.base_url.rstrip("/")

    def prepare(self, task: Task) -> Task:
        options = dict(task.options)
        if "seed" in options:
            if not self.workflow.seeds:
                raise OptionError("seed", "The configured ComfyUI workflow takes no seed.")
            if isinstance(options["seed"], bool) or not isinstance(options["seed"], int):
                raise OptionError("seed", "seed must be a whole number.")
        elif self.workflow.seeds:
            options["seed"] = random.randint(0, MAX_SEED)  # fixed now, so the job records it
        for option in ("width", "height"):
            if option not in options:
                continue
            if self.workflow.size is None:
                raise OptionError(option, f"The configured ComfyUI workflow does not take a {option}.")
            value = options[option]
            if isinstance(value, bool) or not isinstance(value, int) or value < 64 or value % 8:
                raise OptionError(option, f"{option} must be a multiple of 8, at least 64.")
        return replace(task, prompt=apply_style_suffix(task.prompt, task.style_label), options=options)

    async def run(self, task: Task) -> AsyncIterator[Update]:
        if task.upstream_id:
            prompt = _Prompt.from_upstream_id(task.upstream_id)
        else:
            prompt = _Prompt(client_id_for(task.job_id))
        if self.websocket:
            async with aclosing(self._follow_websocket(task, prompt)) as updates:
                async for update in updates:
                    yield update
                    if isinstance(update, Succeeded | Failed):
                        return
        if prompt.prompt_id is None:  # the websocket never opened: submit without it
            yield Submitting()
            submitted = await self._submit(task, prompt)
            yield submitted
            if isinstance(submitted, Failed):
                return
            if prompt.skipped:
                yield Progress(None, prompt.skipped)
        async with aclosing(self._poll(prompt)) as updates:
            async for update in updates:
                yield update

    async def _submit(self, task: Task, prompt: _Prompt) -> Submitted | Failed:
        body = {"prompt": self.workflow.for_task(task), "client_id": prompt.client_id}
        response = await self.client.submit("POST", "/prompt", (400,), json=body)
        if response.status_code == 400:
            return Failed(_rejection(response))
        accepted = parse(response, Accepted)
        prompt.prompt_id = accepted.prompt_id
        prompt.skipped = _skipped(accepted.node_errors)
        return Submitted(f"{prompt.prompt_id}@{prompt.client_id}")

    def _ws_url(self, client_id: str) -> httpx.URL:
        url = httpx.URL(f"{self.base_url}/ws")
        return url.copy_with(scheme="wss" if url.scheme == "https" else "ws", params={"clientId": client_id})

    async def _follow_websocket(self, task: Task, prompt: _Prompt) -> AsyncGenerator[Update, None]:
        """Updates from the websocket until the prompt ends there; returns early (polling takes over)
        when the socket cannot be opened or drops. Opened before submitting, so no message is missed."""
        ws: AsyncWebSocketSession
        try:
            with _unwrapped():
                async with aconnect_ws(
                    str(self._ws_url(prompt.client_id)),
                    self.client.http,
                    keepalive_ping_interval_seconds=None,
                ) as ws:
                    # First, as ComfyUI reads it: previews then come with their prompt id (type 4).
                    await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
                    if prompt.prompt_id is None:
                        yield Submitting()
                        submitted = await self._submit(task, prompt)
                        yield submitted
                        if isinstance(submitted, Failed):
                            return
                        if prompt.skipped:
                            yield Progress(None, prompt.skipped)
                    elif outcome := await self._outcome(prompt):  # re-attached: it may be over already
                        yield outcome
                        return
                    update: Update | Literal["over"] | None = (await self._queue_news(prompt))[1]
                    while update != "over":
                        if update is not None:
                            yield update
                            if isinstance(update, Succeeded | Failed):
                                return
                        update = await self._next(ws, prompt)
        except (HTTPXWSException, httpx.TransportError) as exc:
            log.info("ComfyUI websocket unavailable (%s); polling instead", type(exc).__name__)

    async def _next(self, ws: AsyncWebSocketSession, prompt: _Prompt) -> Update | Literal["over"] | None:
        """The next news on the websocket: an update, None (nothing new), or "over" when the prompt
        ended there (its outputs are read from /history) or the socket dropped (polling takes over)."""
        try:
            event = await ws.receive(timeout=self.idle_seconds)
        except TimeoutError:  # quiet for long: a message may have been missed, so look
            return await self._outcome(prompt) or (await self._queue_news(prompt))[1]
        except HTTPXWSException as exc:
            log.warning("ComfyUI websocket dropped (%s); polling instead", type(exc).__name__)
            return "over"
        if isinstance(event, wsproto.events.BytesMessage):
            preview = preview_frame(bytes(event.data), prompt.prompt_id) if prompt.started else None
            return Progress(preview=preview) if preview else None
        if not isinstance(event, wsproto.events.TextMessage):
            return None
        news = self._read(event.data, prompt)
        if news == "queue":
            return (await self._queue_news(prompt))[1]
        return "over" if news == "done" else news

    def _read(self, text: str, prompt: _Prompt) -> Update | Literal["done", "queue"] | None:
        """What one websocket message means for this prompt (None: nothing new)."""
        try:
            message = Message.model_validate_json(text)
        except ValidationError:
            log.warning("ComfyUI sent an unreadable websocket message: %.200s", text)
            return None
        data = message.data
        if message.type == "status":  # broadcast whenever the server's queue changes
            return "queue" if not prompt.started else None
        if data.get("prompt_id", prompt.prompt_id) != prompt.prompt_id:
            return None
        update: Update | None = None
        if message.type == "execution_start":
            update = Progress(0, "started")
        elif message.type == "executing" and "node" in data and data["node"] is None:
            return "done"
        elif message.type == "execution_success":
            return "done"
        elif message.type == "execution_cached":
            prompt.cached.update(str(node) for node in data.get("nodes") or [])
        elif message.type == "progress" and self.workflow.has_sampler:
            value, maximum = data.get("value"), data.get("max")
            if isinstance(value, int | float) and isinstance(maximum, int | float) and maximum > 0:
                update = Progress(min(99, round(100 * value / maximum)), f"step {value:g} of {maximum:g}")
        elif message.type == "progress_state" and not self.workflow.has_sampler:
            update = self._nodes_progress(data.get("nodes"), prompt.cached)
        elif message.type == "execution_error":
            return Failed(_execution_error(data))
        elif message.type == "execution_interrupted":
            return Failed("The prompt was interrupted on the ComfyUI server.")
        if update is not None:
            prompt.started = True
            if prompt.changes.new(update):
                return update
        return None

    def _nodes_progress(self, nodes: Any, cached: set[str]) -> Progress | None:
        """Progress counted in nodes from a `progress_state` (each running node's value/max counts
        in part; cached nodes are done), for workflows without a sampler's steps to count."""
        if not isinstance(nodes, dict):
            return None
        done = {node: 1.0 for node in cached}
        for node_id, state in nodes.items():
            if not isinstance(state, dict):
                continue
            value, maximum = state.get("value"), state.get("max")
            if state.get("state") == "finished":
                done[str(node_id)] = 1.0
            elif isinstance(value, int | float) and isinstance(maximum, int | float) and maximum > 0:
                done[str(node_id)] = max(0.0, min(1.0, value / maximum))
        total = max(len(self.workflow.nodes), len(done))
        finished = sum(1 for part in done.values() if part >= 1.0)
        return Progress(min(99, round(100 * sum(done.values()) / total)), f"{finished} of {total} nodes done")

    async def _queue_news(self, prompt: _Prompt) -> tuple[bool, Queued | Progress | None]:
        """Whether /queue lists the prompt, and its position (or that it runs) when that is news."""
        assert prompt.prompt_id is not None
        place = _where(await self.client.get_json("/queue", QueueState), prompt.prompt_id)
        if place is None or (prompt.started and isinstance(place, Progress)):
            return place is not None, None
        if isinstance(place, Progress):
            prompt.started = True  # from here on, only the prompt's own messages are news
        return True, place if prompt.changes.new(place) else None

    async def _poll(self, prompt: _Prompt) -> AsyncGenerator[Update, None]:
        misses = 0
        while True:
            if outcome := await self._outcome(prompt):
                yield outcome
                return
            listed, news = await self._queue_news(prompt)
            misses = 0 if listed else misses + 1
            if misses >= LOST_AFTER:
                yield Failed(
                    f"ComfyUI no longer knows prompt {prompt.prompt_id} (was the server restarted?).",
                    "upstream_malformed",
                )
                return
            if news is not None:
                yield news
            await poll_pause(self.client)

    async def _outcome(self, prompt: _Prompt) -> Succeeded | Failed | None:
        """The prompt's result from /history, or None while it has none (ComfyUI answers `{}`)."""
        assert prompt.prompt_id is not None
        history = await self.client.get_json(f"/history/{prompt.prompt_id}", History)
        entry = history.root.get(prompt.prompt_id)
        if entry is None:
            return None
        if entry.status is not None and entry.status.status_str == "error":
            return Failed(_history_failure(entry.status))
        found = self._first_file(entry.outputs)
        if found is None:
            return Failed("ComfyUI finished the prompt, but the workflow saved no image or video.")
        query = urlencode({"filename": found.filename, "subfolder": found.subfolder, "type": found.type})
        return Succeeded([f"{self.base_url}/view?{query}"], guess_content_type(found.filename))

    def _first_file(self, outputs: dict[str, NodeOutput]) -> OutputFile | None:
        """The configured output node's file, else the first saved (`type: output`) image or gif,
        else the first file of any type (a preview)."""
        order = sorted(outputs, key=lambda node_id: node_id != self.workflow.output_node)
        files = [file for node_id in order for file in (*outputs[node_id].images, *outputs[node_id].gifs)]
        return next((file for file in files if file.type == "output"), files[0] if files else None)

    async def find_submitted(self, task: Task) -> str | None:
        """The job's prompt by the client id it was queued with: in /queue (waiting or running), else
        in the newest part of /history (finished); None when ComfyUI holds neither."""
        client_id = client_id_for(task.job_id)
        queue = await self.client.get_json("/queue", QueueState)
        for item in (*queue.queue_running, *queue.queue_pending):
            if _queued_by(item, client_id):
                return f"{item[1]}@{client_id}"
        items = int(self.client.settings.extra.get("recovery_history_items", RECOVERY_HISTORY_ITEMS))
        history = await self.client.get_json("/history", History, params={"max_items": items})
        for prompt_id, entry in history.root.items():
            if _queued_by(entry.prompt, client_id):
                return f"{prompt_id}@{client_id}"
        return None

    async def cancel(self, upstream_id: str) -> bool:
        prompt_id = upstream_id.partition("@")[0]
        queue = await self.client.get_json("/queue", QueueState)
        if _listed(queue.queue_pending, prompt_id):
            await self.client.request("POST", "/queue", json={"delete": [prompt_id]})
            return True
        if _listed(queue.queue_running, prompt_id):
            # Recent ComfyUI interrupts only the named prompt; older versions ignore the body and stop
            # whatever runs, which was just seen to be this prompt.
            await self.client.request("POST", "/interrupt", json={"prompt_id": prompt_id})
            return True
        return False

    async def aclose(self) -> None:
        await self.client.aclose()
