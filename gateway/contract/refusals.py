"""Pydantic's validation errors as the contract's refusals: the same codes, messages and extra fields
the hand-written checks gave, chosen in the order those checks ran."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.contract.errors import ApiError, InvalidOption, InvalidRequest, InvalidStyle, UnknownModel
from gateway.contract.requests import MAX_INTEGER
from gateway.settings import ModelConfig

NOT_AN_OBJECT = "The body must be a JSON object."
# Errors about the body as a whole: not an object, or (a union over the models) no usable `model`.
BODY_ERRORS = frozenset({"model_type", "model_attributes_type", "dict_type"})
MODEL_ERRORS = frozenset({"union_tag_not_found", "union_tag_invalid"})

# (field, pydantic error type) -> message; (field, None) is the field's message for any other error.
MESSAGES: dict[tuple[str, str | None], str] = {
    ("model", None): "`model` is required and must be a string.",
    ("prompt", "text_empty"): "`prompt` must not be empty.",
    ("prompt", "text_too_long"): "`prompt` is {length} characters; the limit is {limit}.",
    ("prompt", "text_control"): "`prompt` holds the control character {character}.",
    ("prompt", None): "`prompt` is required and must be a string.",
    ("style", None): "`style` must be a string.",
    ("options", None): "`options` must be a JSON object.",
    ("callback_url", None): "`callback_url` must be a string.",
    ("name", "text_too_long"): "`name` is {length} characters; the limit is {limit}.",
    ("name", "text_control"): "`name` holds the control character {character}.",
    ("name", None): "`name` must be a non-empty string.",
    ("tokens", None): f"`tokens` must be an integer from 0 to {MAX_INTEGER}, or null.",
    ("models", "model_unknown"): "Unknown model {model!r} in `models`.",
    ("models", None): "`models` must be null or a list of model ids.",
    (
        "rate_limit_per_minute",
        None,
    ): f"`rate_limit_per_minute` must be an integer from 1 to {MAX_INTEGER}, or null.",
    (
        "max_concurrent_jobs",
        None,
    ): f"`max_concurrent_jobs` must be an integer from 1 to {MAX_INTEGER}, or null.",
    ("extra", None): "`{field}` cannot be changed here (tokens move through /credit; revoke with DELETE).",
    (
        "credit.tokens",
        None,
    ): f"`tokens` must be a non-zero integer up to {MAX_INTEGER} (negative takes tokens away).",
    ("note", "text_too_long"): "`note` is {length} characters; the limit is {limit}.",
    ("note", "text_control"): "`note` holds the control character {character}.",
    ("note", None): "`note` must be a string.",
}
OPTION_TYPE_MESSAGES = {
    "boolean": "must be true or false",
    "integer": "must be an integer",
    "number": "must be a number",
    "string": "must be a string",
}


def _field_error(field: str, error: ErrorDetails, key: str | None = None) -> InvalidRequest:
    """The table's refusal for `error` on `field` (`key`: the table's row, when it is not the field)."""
    row = key or field
    kind = error["type"]
    template = MESSAGES.get((row, kind))
    if template is None:
        return InvalidRequest(MESSAGES[(row, None)])
    context = {**error.get("ctx", {}), "field": field}
    # The extra fields beside the message: the prompt's limit never named its field (it came first).
    extra: dict[str, Any] = {}
    if kind == "text_control":
        extra = {"field": field}
    elif kind == "text_too_long":
        extra = (
            {"limit": context["limit"]} if field == "prompt" else {"field": field, "limit": context["limit"]}
        )
    return InvalidRequest(template.format(**context), **extra)


def refuse_body(
    error: ValidationError, body: Any, model: type[BaseModel], *, credit: bool = False
) -> ApiError:
    """A key create/update or credit body's first refusal, in its fields' order (a field the model
    does not take, when it forbids them, first, by name)."""
    if not isinstance(body, dict):
        return InvalidRequest(NOT_AN_OBJECT)
    if model.model_config.get("extra") == "forbid" and (
        unknown := sorted(set(body) - set(model.model_fields))
    ):
        return InvalidRequest(MESSAGES[("extra", None)].format(field=unknown[0]))
    # pydantic reports the fields in the model's order, as the hand-written checks ran
    first = next((d for d in error.errors(include_url=False) if d["loc"]), None)
    if first is None:  # only a key that is not text (a lone surrogate): never through read_json
        return InvalidRequest(NOT_AN_OBJECT)
    field = str(first["loc"][0])
    return _field_error(field, first, "credit.tokens" if credit and field == "tokens" else None)


def _rank(loc: tuple[int | str, ...], kind: str, options: list[str]) -> tuple[int, int, str]:
    """Where the catalog's checks met an error: model, prompt, style, options' type, callback_url, then
    unknown options (by name), then each option's value in its declared order."""
    field = loc[0] if loc else ""
    if field == "options" and len(loc) > 1:
        name = str(loc[1])
        if kind == "extra_forbidden":
            return (5, 0, name)
        return (6, options.index(name) if name in options else len(options), name)
    order = {"model": 0, "prompt": 1, "style": 2, "options": 3, "callback_url": 4}
    return (order.get(str(field), 7), 0, "")


def refuse_generate(error: ValidationError, body: Any, models: Mapping[str, ModelConfig]) -> ApiError:
    """A generate body's first refusal, as the catalog's hand-written checks gave it."""
    errors = error.errors(include_url=False)
    model_id = body.get("model") if isinstance(body, dict) else None
    for details in errors:
        if not details["loc"]:
            if details["type"] in MODEL_ERRORS:
                return _unknown_model(model_id, models)
            return InvalidRequest(NOT_AN_OBJECT)
    config = models.get(model_id) if isinstance(model_id, str) else None
    if config is None:
        return _unknown_model(model_id, models)
    options = list(config.options)
    # A union over the models puts the variant's tag first in each location.
    located = [(d["loc"][1:] if len(models) > 1 else d["loc"], d) for d in errors]
    loc, first = min(located, key=lambda pair: _rank(pair[0], pair[1]["type"], options))
    field = str(loc[0])
    if field == "model":
        return _unknown_model(model_id, models)
    if field == "style" and first["type"] == "style_unknown":
        return _unknown_style(str(model_id), config, body["style"])
    if field == "options" and len(loc) > 1:
        return _refuse_option(str(model_id), config, str(loc[1]), first)
    return _field_error(field, first)


def refuse_options(error: ValidationError, model_id: str, config: ModelConfig) -> ApiError:
    """An options object's first refusal (validated alone, as for a fallback model)."""
    options = list(config.options)
    first = min(
        error.errors(include_url=False), key=lambda d: _rank(("options", *d["loc"]), d["type"], options)
    )
    if not first["loc"]:
        return InvalidRequest(MESSAGES[("options", None)])
    return _refuse_option(model_id, config, str(first["loc"][0]), first)


def _unknown_model(model_id: Any, models: Mapping[str, ModelConfig]) -> ApiError:
    if not isinstance(model_id, str) or not model_id:
        return InvalidRequest(MESSAGES[("model", None)])
    known = ", ".join(sorted(models))
    return UnknownModel(f"Unknown model {model_id!r}; known models: {known}.")


def _unknown_style(model_id: str, config: ModelConfig, style: str) -> ApiError:
    if not config.styles:
        return InvalidStyle(f"Model {model_id!r} takes no style.", style=style)
    values = ", ".join(s.value for s in config.styles)
    return InvalidStyle(f"Unknown style {style!r} for {model_id!r}; styles: {values}.", style=style)


def _refuse_option(model_id: str, config: ModelConfig, name: str, error: ErrorDetails) -> ApiError:
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(config.options)) or "none"
        return InvalidOption(f"Model {model_id!r} has no option {name!r}; options: {allowed}.", option=name)
    why = (
        error["msg"]
        if error["type"].startswith("option_")
        else OPTION_TYPE_MESSAGES[config.options[name].type]
    )
    return InvalidOption(f"Option {name!r} {why}.", option=name)
