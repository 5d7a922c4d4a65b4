"""Luma Dream Machine: submit a generation, poll it from queued through dreaming to completed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from providers.base import (
    Changes,
    ElapsedEstimate,
    Failed,
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
    delete_unless_finished,
    guess_content_type,
    parse,
    poll_pause,
)

VIDEO_ONLY_OPTIONS = ("resolution", "duration", "loop", "image_url")
DEFAULT_MODEL = {"video": "ray-2", "image": "photon-1"}
# Luma reports no percent: the estimate runs against a typical time, overridable in config.
TYPICAL_SECONDS = {"video": 90.0, "image": 20.0}


class Assets(BaseModel):
    video: str | None = None
    image: str | None = None
    progress_video: str | None = None


class Generation(BaseModel):
    id: str
    state: Literal["queued", "dreaming", "completed", "failed"]
    failure_reason: str | None = None
    generation_type: str | None = None
    assets: Assets | None = None


def _finished(response: httpx.Response) -> bool:
    return parse(response, Generation).state in ("completed", "failed")


class LumaProvider:
    name = "luma"

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
        self.client = UpstreamClient(settings, headers, **kwargs)

    def prepare(self, task: Task) -> Task:
        prepared = replace(task, prompt=apply_style_suffix(task.prompt, task.style_label))
        self._submission(prepared)  # raises OptionError for what Luma cannot take
        return prepared

    def _endpoint(self, params: Mapping[str, Any]) -> str:
        endpoint = str(params.get("endpoint", "video"))
        if endpoint not in DEFAULT_MODEL:
            raise OptionError(
                "model", f"This model is configured with an unknown Luma endpoint {endpoint!r}."
            )
        return endpoint

    def _submission(self, task: Task) -> tuple[str, dict[str, Any]]:
        """The path and JSON body of the generation request for this task."""
        endpoint = self._endpoint(task.params)
        options = task.options
        body: dict[str, Any] = {
            "prompt": task.prompt,
            "model": str(task.params.get("upstream_model", DEFAULT_MODEL[endpoint])),
        }
        if "aspect_ratio" in options:
            body["aspect_ratio"] = options["aspect_ratio"]
        if endpoint == "image":
            for option in VIDEO_ONLY_OPTIONS:
                if option in options:
                    raise OptionError(option, f"{option} applies to Luma videos; this model makes images.")
            if "format" in options:
                body["format"] = options["format"]
            return "/generations/image", body
        if "resolution" in options:
            body["resolution"] = options["resolution"]
        if "duration" in options:
            duration = options["duration"]
            body["duration"] = f"{duration}s" if isinstance(duration, int) else duration
        if "loop" in options:
            if not isinstance(options["loop"], bool):
                raise OptionError("loop", "loop must be true or false.")
            body["loop"] = options["loop"]
        if options.get("image_url"):
            body["keyframes"] = {"frame0": {"type": "image", "url": options["image_url"]}}
        return "/generations/video", body

    async def run(self, task: Task) -> AsyncIterator[Update]:
        endpoint = self._endpoint(task.params)
        if task.upstream_id:
            generation_id = task.upstream_id
        else:
            path, body = self._submission(task)
            yield Submitting()
            generation_id = parse(await self.client.submit("POST", path, json=body), Generation).id
            yield Submitted(generation_id)
        estimate = ElapsedEstimate(task, self.client.settings, TYPICAL_SECONDS[endpoint])
        changes = Changes()
        while True:
            generation = await self.client.get_json(f"/generations/{generation_id}", Generation)
            if generation.state == "completed":
                yield self._result(generation, endpoint, task.options)
                return
            if generation.state == "failed":
                yield Failed(
                    generation.failure_reason or "Luma reported the generation failed, without a reason."
                )
                return
            if generation.state == "queued":
                update: Update = Queued()
            else:
                update = estimate.next("dreaming")
            if changes.new(update):
                yield update
            await poll_pause(self.client)

    def _result(
        self, generation: Generation, endpoint: str, options: Mapping[str, Any]
    ) -> Succeeded | Failed:
        kind = generation.generation_type or endpoint
        assets = generation.assets or Assets()
        if kind == "image":
            if not assets.image:
                return Failed("Luma completed the generation without an image URL.", "upstream_malformed")
            default = "image/png" if options.get("format") == "png" else "image/jpeg"
            return Succeeded([assets.image], guess_content_type(assets.image, default))
        if not assets.video:
            return Failed("Luma completed the generation without a video URL.", "upstream_malformed")
        return Succeeded([assets.video], guess_content_type(assets.video, "video/mp4"))

    async def cancel(self, upstream_id: str) -> bool:
        return await delete_unless_finished(self.client, f"/generations/{upstream_id}", _finished)

    async def aclose(self) -> None:
        await self.client.aclose()
