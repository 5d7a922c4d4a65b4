"""What each Runway model accepts on text_to_video and image_to_video, as the runwayml SDK 5.24 declares it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

RATIO = re.compile(r"\d+:\d+")
PROMPT_LIMIT = 1000
LANDSCAPE_PORTRAIT = frozenset({"1280:720", "720:1280"})
GEN4_IMAGE_RATIOS = frozenset({"1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672"})
VEO_RATIOS = frozenset({"1280:720", "720:1280", "1080:1920", "1920:1080"})
ANY_SECONDS = tuple(range(2, 11))


@dataclass(frozen=True)
class Rules:
    """One model's fields on one endpoint; `ratios` None accepts any `w:h`."""

    ratios: frozenset[str] | None
    durations: tuple[int, ...]
    duration_required: bool
    prompt_required: bool


VEO = Rules(VEO_RATIOS, (4, 6, 8), duration_required=False, prompt_required=True)
VEO_FROM_IMAGE = Rules(VEO_RATIOS, (4, 6, 8), duration_required=False, prompt_required=False)
TEXT_TO_VIDEO = {
    "gen4.5": Rules(LANDSCAPE_PORTRAIT, ANY_SECONDS, duration_required=True, prompt_required=True),
    "veo3.1": VEO,
    "veo3.1_fast": VEO,
}
IMAGE_TO_VIDEO = {
    "gen4.5": Rules(GEN4_IMAGE_RATIOS, ANY_SECONDS, duration_required=True, prompt_required=True),
    "gen4_turbo": Rules(GEN4_IMAGE_RATIOS, ANY_SECONDS, duration_required=False, prompt_required=False),
    "veo3.1": VEO_FROM_IMAGE,
    "veo3.1_fast": VEO_FROM_IMAGE,
}
OTHER = Rules(None, ANY_SECONDS, duration_required=False, prompt_required=False)
"""The SDK's many other models: the checks every model shares, nothing model-specific."""


def _duration_issue(rules: Rules, duration: Any) -> str | None:
    if duration is None:
        return "Required" if rules.duration_required else None
    if isinstance(duration, bool) or not isinstance(duration, int) or duration not in rules.durations:
        if rules.durations == ANY_SECONDS:
            return "Must be an integer from 2 to 10"
        return f"Must be one of {', '.join(map(str, rules.durations))}"
    return None


def issues_in(body: dict[str, Any], image: bool) -> list[dict[str, Any]]:
    """What Runway's body validation would complain about, as its `issues` list."""
    issues: list[dict[str, Any]] = []

    def issue(field: str, message: str) -> None:
        issues.append({"path": [field], "message": message})

    model = body.get("model")
    if not isinstance(model, str) or not model:
        issue("model", "Required")
        return issues
    rules = (IMAGE_TO_VIDEO if image else TEXT_TO_VIDEO).get(model, OTHER)
    text = body.get("promptText")
    if (rules.prompt_required or text is not None) and (not isinstance(text, str) or not text.strip()):
        issue("promptText", "Must be a non-empty string")
    elif isinstance(text, str) and len(text.encode("utf-16-le")) // 2 > PROMPT_LIMIT:
        issue("promptText", f"Must be at most {PROMPT_LIMIT} characters")
    if image and not (isinstance(body.get("promptImage"), str | list) and body["promptImage"]):
        issue("promptImage", "Required")
    ratio = body.get("ratio")
    if not isinstance(ratio, str) or not RATIO.fullmatch(ratio):
        issue("ratio", "Must be a ratio such as 1280:720")
    elif rules.ratios is not None and ratio not in rules.ratios:
        issue("ratio", f"Must be one of {', '.join(sorted(rules.ratios))} for {model}")
    if problem := _duration_issue(rules, body.get("duration")):
        issue("duration", problem)
    return issues
