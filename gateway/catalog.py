"""The model catalog from config.toml: request validation (model, style, options) and pricing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidOption, InvalidRequest, InvalidStyle, UnknownModel
from gateway.parsing import control_character_in
from gateway.settings import ModelConfig, OptionSpec, Settings
from gateway.settlement import price


@dataclass(frozen=True)
class GenerationRequest:
    """A client's generate body after validation; nothing about it is unchecked."""

    model: str
    prompt: str
    style: str | None
    style_label: str | None
    options: dict[str, Any]
    callback_url: str | None


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models = settings.models

    def model(self, model_id: str) -> ModelConfig:
        config = self.models.get(model_id)
        if config is None:
            known = ", ".join(sorted(self.models))
            raise UnknownModel(f"Unknown model {model_id!r}; known models: {known}.")
        return config

    def validate(self, body: Any) -> GenerationRequest:
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object.")
        model_id = body.get("model")
        if not isinstance(model_id, str) or not model_id:
            raise InvalidRequest("`model` is required and must be a string.")
        config = self.model(model_id)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidRequest("`prompt` is required and must be a string.")
        prompt = prompt.strip()
        if not prompt:
            raise InvalidRequest("`prompt` must not be empty.")
        limit = self.settings.max_prompt_chars
        if len(prompt) > limit:
            raise InvalidRequest(f"`prompt` is {len(prompt)} characters; the limit is {limit}.", limit=limit)
        if (control := control_character_in(prompt)) is not None:
            # NUL and friends would be stored and sent upstream, where they mean nothing or break things
            raise InvalidRequest(f"`prompt` holds the control character {control}.", field="prompt")
        style, label = self._style(model_id, config, body.get("style"))
        options = body.get("options")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise InvalidRequest("`options` must be a JSON object.")
        callback_url = body.get("callback_url")
        if callback_url is not None and not isinstance(callback_url, str):
            raise InvalidRequest("`callback_url` must be a string.")
        return GenerationRequest(
            model=model_id,
            prompt=prompt,
            style=style,
            style_label=label,
            options=validate_options(model_id, config.options, options),
            callback_url=callback_url or None,
        )

    @staticmethod
    def _style(model_id: str, config: ModelConfig, style: Any) -> tuple[str | None, str | None]:
        if style is None or style == "":
            return None, None
        if not isinstance(style, str):
            raise InvalidRequest("`style` must be a string.")
        for known in config.styles:
            if known.value == style:
                return known.value, known.label
        if not config.styles:
            raise InvalidStyle(f"Model {model_id!r} takes no style.", style=style)
        values = ", ".join(s.value for s in config.styles)
        raise InvalidStyle(f"Unknown style {style!r} for {model_id!r}; styles: {values}.", style=style)

    def price(self, model_id: str, options: dict[str, Any]) -> int:
        return price(self.model(model_id), options)

    def public(self, model_id: str, available: bool) -> dict[str, Any]:
        config = self.model(model_id)
        return {
            "id": model_id,
            "kind": config.kind,
            "provider": config.provider,
            "cost": config.cost,
            "pricing": config.pricing.model_dump() if config.pricing else None,
            "styles": [s.model_dump() for s in config.styles],
            "options": {name: spec.model_dump(exclude_none=True) for name, spec in config.options.items()},
            "available": available,
        }


def validate_options(model_id: str, specs: dict[str, OptionSpec], given: dict[str, Any]) -> dict[str, Any]:
    """Check each option against the model's declared schema; fill defaults. 400 names the field."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        allowed = ", ".join(sorted(specs)) or "none"
        raise InvalidOption(
            f"Model {model_id!r} has no option {unknown[0]!r}; options: {allowed}.", option=unknown[0]
        )
    result: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in given or given[name] is None:
            if spec.default is not None:
                result[name] = spec.default
            continue
        result[name] = _check_option(name, spec, given[name])
    return result


def _check_option(name: str, spec: OptionSpec, value: Any) -> Any:
    def fail(why: str) -> InvalidOption:
        return InvalidOption(f"Option {name!r} {why}.", option=name)

    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise fail("must be true or false")
    elif spec.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("must be an integer")
    elif spec.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("must be a number")
    elif not isinstance(value, str):
        raise fail("must be a string")
    if spec.choices is not None and value not in spec.choices:
        raise fail("must be one of " + ", ".join(str(c) for c in spec.choices))
    if spec.min is not None and value < spec.min:
        raise fail(f"must be at least {spec.min:g}")
    if spec.max is not None and value > spec.max:
        raise fail(f"must be at most {spec.max:g}")
    return value
