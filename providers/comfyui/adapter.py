"""The ComfyUI adapter: queue an API-format workflow, follow it over the websocket (or by polling
/history and /queue when there is none), and hand back the saved file's /view URL."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import wsproto.events
from httpx_ws import AsyncWebSocketSession, HTTPXWSException, aconnect_ws
from pydantic import ValidationError

from providers.base import (
    Changes,
    Failed,
    OptionError,
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
from providers.comfyui.answers import (
    LOST_AFTER,
    MAX_SEED,
    RECOVERY_HISTORY_ITEMS,
    Accepted,
    History,
    Message,
    NodeOutput,
    OutputFile,
    QueueState,
    client_id_for,
    execution_error,
    history_failure,
    listed,
    preview_frame,
    queued_by,
    rejection,
    skipped,
    unwrapped,
    where,
)
from providers.workflows import Workflow

log = logging.getLogger("providers.comfyui")

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
            return Failed(rejection(response))
        accepted = parse(response, Accepted)
        prompt.prompt_id = accepted.prompt_id
        prompt.skipped = skipped(accepted.node_errors)
        return Submitted(f"{prompt.prompt_id}@{prompt.client_id}")

    def _ws_url(self, client_id: str) -> httpx.URL:
        url = httpx.URL(f"{self.base_url}/ws")
        return url.copy_with(scheme="wss" if url.scheme == "https" else "ws", params={"clientId": client_id})

    async def _follow_websocket(self, task: Task, prompt: _Prompt) -> AsyncGenerator[Update, None]:
        """Updates from the websocket until the prompt ends there; returns early (polling takes over)
        when the socket cannot be opened or drops. Opened before submitting, so no message is missed."""
        ws: AsyncWebSocketSession
        try:
            with unwrapped():
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
            return Failed(execution_error(data))
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
        place = where(await self.client.get_json("/queue", QueueState), prompt.prompt_id)
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
            return Failed(history_failure(entry.status))
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
            if queued_by(item, client_id):
                return f"{item[1]}@{client_id}"
        items = int(self.client.settings.extra.get("recovery_history_items", RECOVERY_HISTORY_ITEMS))
        history = await self.client.get_json("/history", History, params={"max_items": items})
        for prompt_id, entry in history.root.items():
            if queued_by(entry.prompt, client_id):
                return f"{prompt_id}@{client_id}"
        return None

    async def cancel(self, upstream_id: str) -> bool:
        prompt_id = upstream_id.partition("@")[0]
        queue = await self.client.get_json("/queue", QueueState)
        if listed(queue.queue_pending, prompt_id):
            await self.client.request("POST", "/queue", json={"delete": [prompt_id]})
            return True
        if listed(queue.queue_running, prompt_id):
            # Recent ComfyUI interrupts only the named prompt; older versions ignore the body and stop
            # whatever runs, which was just seen to be this prompt.
            await self.client.request("POST", "/interrupt", json={"prompt_id": prompt_id})
            return True
        return False

    async def aclose(self) -> None:
        await self.client.aclose()
