"""ComfyUI's answers (queue, history, websocket messages and preview frames) and how to read them."""

from __future__ import annotations

import contextlib
import json
import struct
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, RootModel

from providers.base import (
    Preview,
    Progress,
    Queued,
)

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


def queued_by(item: list[Any], client_id: str) -> bool:
    """Whether a queue item (or a history entry's `prompt`) was queued with this client id: ComfyUI
    keeps the `client_id` of the POST in the item's `extra_data`."""
    return len(item) > 3 and isinstance(item[3], dict) and item[3].get("client_id") == client_id


def listed(items: list[list[Any]], prompt_id: str) -> bool:
    return any(len(item) > 1 and item[1] == prompt_id for item in items)


def where(queue: QueueState, prompt_id: str) -> Queued | Progress | None:
    """Where the prompt is: running, waiting (position 1 = next), or in neither list."""
    if listed(queue.queue_running, prompt_id):
        return Progress(None, "running")
    pending = [item for item in queue.queue_pending if len(item) > 1]
    pending.sort(key=lambda item: item[0] if isinstance(item[0], int | float) else 0)
    for index, item in enumerate(pending):
        if item[1] == prompt_id:
            return Queued(index + 1)
    return None


def execution_error(data: Mapping[str, Any]) -> str:
    node = data.get("node_type") or data.get("node_id") or "a node"
    reason = " ".join(str(data.get("exception_message") or "no reason given").split())
    return f"ComfyUI failed in {node}: {reason}"[:300]


def history_failure(status: HistoryStatus) -> str:
    for name, data in status.messages:
        if name == "execution_error":
            return execution_error(data)
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


def skipped(node_errors: Any) -> str | None:
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


def rejection(response: httpx.Response) -> str:
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
def unwrapped() -> Iterator[None]:
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
