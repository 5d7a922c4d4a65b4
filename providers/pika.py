"""Pika through fal.ai's queue: submit to the model path, follow the returned status URL, fetch the result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError

from providers.base import (
    Changes,
    ElapsedEstimate,
    Failed,
    MalformedUpstream,
    OptionError,
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

DEFAULT_MODEL_PATH = "fal-ai/pika/v2.2/text-to-video"
# The model input fields this adapter passes through from the job's options.
INPUT_OPTIONS = ("negative_prompt", "aspect_ratio", "resolution", "duration", "seed")
# fal reports no percent: the estimate runs against a typical time, overridable in config.
TYPICAL_SECONDS = 60.0
# Answers of the response URL that carry the model's own failure; 429 and gateway errors are retried.
RESULT_FAILURES = frozenset(range(400, 600)) - {429, 502, 503, 504}


class Handle(BaseModel):
    """What fal's submit answers, and what this adapter stores as the job's upstream id."""

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class Status(BaseModel):
    status: Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None


class File(BaseModel):
    url: str
    content_type: str | None = None
    file_size: int | None = None


class VideoResult(BaseModel):
    video: File


def _is_image_to_video(model_path: str) -> bool:
    return model_path.rstrip("/").endswith("image-to-video")


def _detail(response: httpx.Response) -> str:
    """fal's `detail` (a sentence, or a list of validation errors) as one readable sentence."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        parts = [
            f"{item.get('msg', item)} ({'.'.join(map(str, item.get('loc', [])))})"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        ]
        detail = "; ".join(parts)
    text = " ".join(str(detail or response.text or response.reason_phrase).split())[:300]
    return f"fal answered {response.status_code}: {text}"


class PikaProvider:
    name = "pika"

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        headers = {"Authorization": f"Key {settings.api_key}"} if settings.api_key else {}
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
        self.client = UpstreamClient(settings, headers, **kwargs)

    def prepare(self, task: Task) -> Task:
        prepared = replace(task, prompt=apply_style_suffix(task.prompt, task.style_label))
        self._input(prepared)  # raises OptionError for what the model path cannot take
        return prepared

    def _input(self, task: Task) -> dict[str, Any]:
        """The model's input JSON: the prompt plus the options present (only those)."""
        image_to_video = _is_image_to_video(self._model_path(task))
        body: dict[str, Any] = {"prompt": task.prompt}
        body.update({key: task.options[key] for key in INPUT_OPTIONS if key in task.options})
        image_url = task.options.get("image_url")
        if image_to_video:
            if not image_url:
                raise OptionError("image_url", "This Pika model animates an image: image_url is required.")
            body["image_url"] = image_url
            body.pop("aspect_ratio", None)  # the video takes the image's shape
        elif image_url:
            raise OptionError(
                "image_url", "This Pika model makes video from text only; it takes no image_url."
            )
        return body

    def _model_path(self, task: Task) -> str:
        return str(task.params.get("model_path", DEFAULT_MODEL_PATH)).strip("/")

    async def run(self, task: Task) -> AsyncIterator[Update]:
        if task.upstream_id:
            handle = self._stored_handle(task.upstream_id)
        else:
            body = self._input(task)
            yield Submitting()
            response = await self.client.submit("POST", f"/{self._model_path(task)}", json=body)
            handle = self._checked(parse(response, Handle))
            yield Submitted(handle.model_dump_json())
        estimate = ElapsedEstimate(task, self.client.settings, TYPICAL_SECONDS)
        changes = Changes()
        while True:
            status = await self.client.get_json(handle.status_url, Status)
            if status.status == "COMPLETED":
                yield await self._result(handle, status)
                return
            if status.status == "IN_QUEUE":
                # fal counts from 0; the gateway's positions count from 1 (1 = next).
                position = status.queue_position + 1 if status.queue_position is not None else None
                update: Update = Queued(position)
            else:
                update = estimate.next("generating")
            if changes.new(update):
                yield update
            await poll_pause(self.client)

    async def _result(self, handle: Handle, status: Status) -> Succeeded | Failed:
        if status.error:
            kind = f" ({status.error_type})" if status.error_type else ""
            return Failed(f"{status.error}{kind}")
        response = await self.client.request_allowing("GET", handle.response_url, RESULT_FAILURES)
        if response.status_code >= 400:
            return Failed(_detail(response))
        video = parse(response, VideoResult).video
        return Succeeded([video.url], video.content_type or guess_content_type(video.url, "video/mp4"))

    def _checked(self, handle: Handle) -> Handle:
        """fal's URLs are followed as given, but only on fal's own host: the key goes with them."""
        base = httpx.URL(self.client.settings.base_url)
        for url in (handle.status_url, handle.response_url, handle.cancel_url):
            target = httpx.URL(url)
            if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
                raise MalformedUpstream(f"fal answered a queue URL on another host ({target.host}).")
        return handle

    def _stored_handle(self, upstream_id: str) -> Handle:
        try:
            return self._checked(Handle.model_validate_json(upstream_id))
        except ValidationError as exc:
            raise MalformedUpstream("The stored upstream id is not a fal request handle.") from exc

    async def cancel(self, upstream_id: str) -> bool:
        handle = self._stored_handle(upstream_id)
        # 202: cancellation requested; 400: the request already completed; 404: fal no longer knows it.
        response = await self.client.request_allowing("PUT", handle.cancel_url, (400, 404))
        return response.status_code < 300

    async def aclose(self) -> None:
        await self.client.aclose()
