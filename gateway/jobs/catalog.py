"""The model catalog from config.toml: request validation (through the contract's models) and pricing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.contract.errors import UnknownModel
from gateway.contract.refusals import refuse_generate, refuse_options
from gateway.contract.requests import generate_adapter, generate_model, key_models, options_model
from gateway.jobs.settlement import price
from gateway.settings import ModelConfig, Settings


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
    """The configured models, and the contract's request models built for them once, at start-up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models = settings.models
        self.options = {model_id: options_model(model_id, c.options) for model_id, c in self.models.items()}
        self.requests = {
            model_id: generate_model(model_id, config, settings.max_prompt_chars, self.options[model_id])
            for model_id, config in self.models.items()
        }
        self._generate = generate_adapter(self.requests.values())
        self.key_request, self.key_update = key_models(self.models)
        # What turning a validated body into a GenerationRequest needs, looked up rather than worked out
        # on every create.
        self._labels = {model_id: {s.value: s.label for s in c.styles} for model_id, c in self.models.items()}
        self._defaults = {
            model_id: [
                (f"option_{i}", name, spec.default) for i, (name, spec) in enumerate(c.options.items())
            ]
            for model_id, c in self.models.items()
        }

    def model(self, model_id: str) -> ModelConfig:
        config = self.models.get(model_id)
        if config is None:
            known = ", ".join(sorted(self.models))
            raise UnknownModel(f"Unknown model {model_id!r}; known models: {known}.")
        return config

    def validate(self, body: Any) -> GenerationRequest:
        try:
            request = self._generate.validate_python(body)
        except ValidationError as exc:
            raise refuse_generate(exc, body, self.models) from None
        model_id = request.model
        return GenerationRequest(
            model=model_id,
            prompt=request.prompt,
            style=request.style,
            style_label=self._labels[model_id].get(request.style) if request.style else None,
            options=_filled(self._defaults[model_id], request.options),
            callback_url=request.callback_url or None,
        )

    def validate_options(self, model_id: str, given: dict[str, Any]) -> dict[str, Any]:
        """`given` as model `model_id`'s options, defaults filled; 400 names the option."""
        config = self.model(model_id)
        try:
            options = self.options[model_id].model_validate(given)
        except ValidationError as exc:
            raise refuse_options(exc, model_id, config) from None
        return _filled(self._defaults[model_id], options)

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


def _filled(defaults: list[tuple[str, str, Any]], options: BaseModel | None) -> dict[str, Any]:
    """The validated options by name, in their declared order: a null or missing one is its default
    (left out when it has none). `defaults`: each option's field, name and default."""
    values = options.__dict__ if options is not None else {}
    result: dict[str, Any] = {}
    for field, name, default in defaults:
        value = values.get(field)
        if value is None:
            value = default
        if value is not None:
            result[name] = value
    return result
