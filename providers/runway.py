"""Runway: submit a text- or image-to-video task, poll it until it succeeds, fails or is cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

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
    delete_unless_finished,
    guess_content_type,
    parse,
    poll_pause,
)

API_VERSION = "2024-11-06"
DEFAULT_MODEL = "gen4.5"
PROMPT_LIMIT = 1000  # promptText, in UTF-16 code units (runwayml SDK 5.24)
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class ModelRules:
    """What one Runway model accepts, from the runwayml SDK's request types."""

    ratios: frozenset[str]
    """Ratios for text_to_video; empty when the model only animates images."""
    image_ratios: frozenset[str]
    durations: tuple[int, ...] | None
    duration_required: bool = False

    def describe_durations(self) -> str:
        values = self.durations or ()
        if len(values) > 3 and list(values) == list(range(values[0], values[-1] + 1)):
            return f"a whole number of seconds from {values[0]} to {values[-1]}"
        return f"{', '.join(map(str, values[:-1]))} or {values[-1]} seconds"


_VEO = ModelRules(
    ratios=frozenset({"1280:720", "720:1280", "1080:1920", "1920:1080"}),
    image_ratios=frozenset({"1280:720", "720:1280", "1080:1920", "1920:1080"}),
    durations=(4, 6, 8),
)
RULES = {
    "gen4.5": ModelRules(
        ratios=frozenset({"1280:720", "720:1280"}),
        image_ratios=frozenset({"1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672"}),
        durations=tuple(range(2, 11)),
        duration_required=True,
    ),
    "gen4_turbo": ModelRules(
        ratios=frozenset(),
        image_ratios=frozenset({"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"}),
        durations=None,
    ),
    "veo3.1": _VEO,
    "veo3.1_fast": _VEO,
}


class Created(BaseModel):
    id: str


class RunwayTask(BaseModel):
    id: str
    status: Literal["PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    progress: float | None = None
    output: list[str] | None = None
    failure: str | None = None
    failure_code: str | None = Field(default=None, alias="failureCode")


def _finished(response: httpx.Response) -> bool:
    return parse(response, RunwayTask).status in TERMINAL


def _check(model: str, rules: ModelRules, options: dict[str, Any], with_image: bool) -> None:
    """OptionError for a ratio or duration the upstream model does not take."""
    if not with_image and not rules.ratios:
        raise OptionError("image_url", f"Runway's {model} animates an image: image_url is required.")
    ratios = rules.image_ratios if with_image else rules.ratios
    ratio = options.get("ratio")
    if ratio is None or ratio not in ratios:
        where = " from an image" if with_image else ""
        raise OptionError("ratio", f"Runway's {model}{where} takes a ratio of {', '.join(sorted(ratios))}.")
    duration = options.get("duration")
    if duration is None:
        if rules.duration_required:
            raise OptionError("duration", f"Runway's {model} needs a duration.")
        return
    if isinstance(duration, bool) or not isinstance(duration, int):
        raise OptionError("duration", "duration must be a whole number of seconds.")
    if rules.durations is not None and duration not in rules.durations:
        raise OptionError("duration", f"Runway's {model} takes {rules.describe_durations()}.")


class RunwayProvider:
    name = "run"

    def __init__(self, settings: ProviderSettings, *, sleep: Sleep | None = None) -> None:
        headers = {"X-Runway-Version": API_VERSION}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
        self.client = UpstreamClient(settings, headers, **kwargs)

    def prepare(self, task: Task) -> Task:
        prepared = replace(task, prompt=apply_style_suffix(task.prompt, task.style_label))
        self._submission(prepared)  # raises OptionError for what the model cannot take
        return prepared

    def _submission(self, task: Task) -> tuple[str, dict[str, Any]]:
        """The path and JSON body of the task request."""
        model = str(task.params.get("upstream_model", DEFAULT_MODEL))
        options = dict(task.options)
        image = options.get("image_url")
        if len(task.prompt.encode("utf-16-le")) // 2 > PROMPT_LIMIT:
            raise OptionError(
                "prompt", f"Runway takes a prompt of at most {PROMPT_LIMIT} characters, style included."
            )
        rules = RULES.get(model)
        if rules is not None:
            _check(model, rules, options, with_image=bool(image))
        body: dict[str, Any] = {"model": model, "promptText": task.prompt}
        if image:
            body["promptImage"] = image
        for option in ("ratio", "duration", "seed"):
            if option in options:
                body[option] = options[option]
        return ("/image_to_video" if image else "/text_to_video"), body

    async def run(self, task: Task) -> AsyncIterator[Update]:
        if task.upstream_id:
            task_id = task.upstream_id
        else:
            path, body = self._submission(task)
            yield Submitting()
            task_id = parse(await self.client.submit("POST", path, json=body), Created).id
            yield Submitted(task_id)
        changes = Changes()
        while True:
            upstream = await self.client.get_json(f"/tasks/{task_id}", RunwayTask)
            if upstream.status in TERMINAL:
                yield self._outcome(upstream)
                return
            if upstream.status == "RUNNING":
                percent = (
                    None if upstream.progress is None else min(99, max(0, round(upstream.progress * 100)))
                )
                update: Update = Progress(percent)
            else:  # PENDING, or THROTTLED: waiting for capacity on Runway's side
                update = Queued()
            if changes.new(update):
                yield update
            await poll_pause(self.client)

    def _outcome(self, upstream: RunwayTask) -> Succeeded | Failed:
        if upstream.status == "SUCCEEDED":
            if not upstream.output:
                return Failed("Runway reported success without an output URL.", "upstream_malformed")
            return Succeeded(list(upstream.output), guess_content_type(upstream.output[0], "video/mp4"))
        if upstream.status == "CANCELLED":
            return Failed("cancelled upstream")
        failure = upstream.failure or "Runway reported the task failed, without a reason."
        return Failed(f"{failure} ({upstream.failure_code})" if upstream.failure_code else failure)

    async def cancel(self, upstream_id: str) -> bool:
        return await delete_unless_finished(self.client, f"/tasks/{upstream_id}", _finished)

    async def aclose(self) -> None:
        await self.client.aclose()
