"""The request bodies: generate (per model, from config.toml's option specs), key create/update, credit."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal, Union, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from gateway.contract.parsing import blank, control_character_in
from gateway.settings import DEFAULT_OPTION_CHARS, ModelConfig, OptionSpec

MAX_INTEGER = 2**53 - 1  # what every JSON client (JavaScript included) can hold exactly; SQLite holds it too
DEFAULT_PROMPT_CHARS = 2000  # settings.max_prompt_chars's default: the static document's figure
# Operators' labels: long enough for any name or invoice note, short enough that a list stays a list.
MAX_NAME_CHARS = 200
MAX_NOTE_CHARS = 1000

# Strict everywhere: "5" is not 5 and true is not 1, as the hand-written checks had it. Fields a body
# carries beyond the model's are ignored unless the model says otherwise (clients add their own).
STRICT = ConfigDict(strict=True, extra="ignore")


def _text(limit: int) -> Callable[[str], str]:
    """A text's own checks after its type: stripped, not empty, at most `limit` characters, no control
    characters (NUL and friends would be stored and sent on, where they mean nothing or break things).
    Python's strip(), not pydantic's, so what is trimmed stays what it was."""

    def check(value: str) -> str:
        value = value.strip()
        if blank(value):  # white space alone, or characters that show nothing (zero-width spaces)
            raise PydanticCustomError("text_empty", "empty")
        if len(value) > limit:
            raise PydanticCustomError("text_too_long", "too long", {"length": len(value), "limit": limit})
        if (control := control_character_in(value)) is not None:
            raise PydanticCustomError("text_control", "control character", {"character": control})
        return value

    return check


def _label_or_empty(limit: int) -> Callable[[str | None], str | None]:
    """An optional label: null stays null, an empty one stays empty, else `_text`'s checks."""
    checked = _text(limit)

    def check(value: str | None) -> str | None:
        if value is None or not value.strip():
            return None if value is None else ""
        return checked(value)

    return check


def _present(value: Any) -> Any:
    """A field that may be left out but, when sent, not be null."""
    if value is None:
        raise PydanticCustomError("null", "null")
    return value


def _count(minimum: int, description: str) -> dict[str, Any]:
    return {
        "type": ["integer", "null"],
        "minimum": minimum,
        "maximum": MAX_INTEGER,
        "description": description,
    }


NAME_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}
# A key's name: trimmed, not empty, at most MAX_NAME_CHARS characters.
Name = Annotated[StrictStr, AfterValidator(_text(MAX_NAME_CHARS)), WithJsonSchema(NAME_SCHEMA)]
Tokens = Annotated[
    StrictInt | None,
    Field(ge=0, le=MAX_INTEGER),
    WithJsonSchema(_count(0, "The opening balance (default 0)")),
]
# A key's own limit; null: the gateway's default.
Limit = Annotated[
    StrictInt | None, Field(ge=1, le=MAX_INTEGER), WithJsonSchema(_count(1, "null: the gateway's default"))
]


# --- POST /api/generate, /api/generations, /api/quote -----------------------------------------------

CALLBACK_URL_SCHEMA = {
    "description": "An absolute http(s) URL on a public address; empty or null means none",
    "anyOf": [{"type": "string", "format": "uri"}, {"const": ""}, {"type": "null"}],
}


class GenerateRequest(BaseModel):
    """The body of POST /api/generate, /api/generations and /api/quote: the shape every model shares.

    Per model (its options, styles) and per configuration (the prompt limit) it is `generate_model`'s
    subclass; this one is what the static document and docs/api.md show."""

    model_config = STRICT

    model: StrictStr = Field(description="One of GET /api/models", examples=["suno"])
    prompt: Annotated[StrictStr, AfterValidator(_text(DEFAULT_PROMPT_CHARS))] = Field(
        description="Trimmed, not empty, at most `max_prompt_chars` characters",
        json_schema_extra={"minLength": 1, "maxLength": DEFAULT_PROMPT_CHARS},
    )
    # null (and an empty string) mean "none", as if the field were left out
    style: StrictStr | None = Field(None, description="One of the model's style values")
    options: dict[str, Any] | None = Field(None, description="The model's declared options")
    callback_url: Annotated[StrictStr | None, WithJsonSchema(CALLBACK_URL_SCHEMA)] = None


OPTION_TYPES: dict[str, Any] = {
    "boolean": StrictBool,
    "integer": StrictInt,
    "number": StrictInt | StrictFloat,  # a union keeps 5 an int, as the client sent it
    "string": StrictStr,
}
OPTION_SCHEMA_TYPES = {"boolean": "boolean", "integer": "integer", "number": "number", "string": "string"}


def _option_check(spec: OptionSpec) -> Callable[[Any], Any]:
    """A string's length and characters, then choices, then minimum, then maximum (the order the catalog
    always checked them in)."""
    limit = spec.max_length or DEFAULT_OPTION_CHARS

    def check(value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, str):
            if len(value) > limit:
                raise PydanticCustomError(
                    "option_too_long", "must be at most {limit} characters", {"limit": limit}
                )
            if (control := control_character_in(value)) is not None:
                raise PydanticCustomError(
                    "option_control", "holds the control character {character}", {"character": control}
                )
        if spec.choices is not None and value not in spec.choices:
            choices = ", ".join(str(c) for c in spec.choices)
            raise PydanticCustomError("option_choice", "must be one of {choices}", {"choices": choices})
        if spec.min is not None and value < spec.min:
            raise PydanticCustomError("option_min", "must be at least {min}", {"min": str(_number(spec.min))})
        if spec.max is not None and value > spec.max:
            raise PydanticCustomError("option_max", "must be at most {max}", {"max": str(_number(spec.max))})
        return value

    return check


def _number(value: float) -> float | int:
    """A bound as written in config.toml: 2, not 2.0 (config reads every bound as a float)."""
    return int(value) if value.is_integer() else value


def option_schema(spec: OptionSpec) -> dict[str, Any]:
    """An option as published: its type with choices and range; null (the default) allowed."""
    value: dict[str, Any] = {"type": OPTION_SCHEMA_TYPES[spec.type]}
    if spec.choices is not None:
        value["enum"] = list(spec.choices)
    if spec.min is not None:
        value["minimum"] = _number(spec.min)
    if spec.max is not None:
        value["maximum"] = _number(spec.max)
    if spec.type == "string":
        value["maxLength"] = spec.max_length or DEFAULT_OPTION_CHARS
    schema: dict[str, Any] = {"anyOf": [value, {"type": "null"}]}
    if spec.default is not None:
        schema["default"] = spec.default
    if spec.description:
        schema["description"] = spec.description
    return schema


def component_name(kind: str, model_id: str) -> str:
    """`kind`_`model_id` as an OpenAPI component may be named (pydantic reads a `.` as a module's)."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_-]', '_', model_id)}"


def options_model(model_id: str, specs: Mapping[str, OptionSpec]) -> type[BaseModel]:
    """A model's options as a pydantic model: unknown ones refused, null meaning the default. Field
    names are positional (an option may be called `json` or `copy`); the wire names are the aliases."""
    fields: dict[str, Any] = {
        f"option_{index}": (
            Annotated[
                OPTION_TYPES[spec.type] | None,
                AfterValidator(_option_check(spec)),
                WithJsonSchema(option_schema(spec)),
            ],
            Field(spec.default, alias=name),
        )
        for index, (name, spec) in enumerate(specs.items())
    }
    name = component_name("Options", model_id)
    config = ConfigDict(strict=True, extra="forbid", title=name)
    return cast(type[BaseModel], create_model(name, __config__=config, **fields))


def _style_check(config: ModelConfig) -> Callable[[str | None], str | None]:
    values = {style.value for style in config.styles}

    def check(style: str | None) -> str | None:
        if style is None or style == "":
            return None
        if style not in values:
            raise PydanticCustomError("style_unknown", "unknown style")
        return style

    return check


def generate_model(
    model_id: str, config: ModelConfig, max_prompt_chars: int, options: type[BaseModel]
) -> type[GenerateRequest]:
    """GenerateRequest for one model of the configuration: its id, styles, options (`options_model`'s)
    and the prompt limit."""
    styles = [style.value for style in config.styles]
    style_schema = {
        "description": "One of the model's style values; empty or null means none",
        "anyOf": [{"enum": [*styles, ""]}, {"type": "null"}],
    }
    prompt_schema = {
        "type": "string",
        "minLength": 1,
        "maxLength": max_prompt_chars,
        "description": "Trimmed, not empty, at most `max_prompt_chars` characters",
    }
    fields: dict[str, Any] = {
        "model": (Literal[model_id], ...),
        "prompt": (
            Annotated[StrictStr, AfterValidator(_text(max_prompt_chars)), WithJsonSchema(prompt_schema)],
            ...,
        ),
        "style": (
            Annotated[StrictStr | None, AfterValidator(_style_check(config)), WithJsonSchema(style_schema)],
            None,
        ),
        "options": (options | None, None),
    }
    name = component_name("GenerateRequest", model_id)
    return cast(type[GenerateRequest], create_model(name, __base__=GenerateRequest, **fields))


def generate_adapter(models: Collection[type[GenerateRequest]]) -> TypeAdapter[Any]:
    """One validator for every model of the configuration: the body's `model` picks the variant."""
    if not models:
        return TypeAdapter(GenerateRequest)
    variants: Any = tuple(models)
    if len(variants) == 1:
        return TypeAdapter(variants[0])
    return TypeAdapter(Annotated[Union[variants], Field(discriminator="model")])  # noqa: UP007


# --- the operators' key API ---------------------------------------------------------------------------


def _known_models(known: Collection[str] | None) -> Callable[[list[str] | None], list[str] | None]:
    def check(models: list[str] | None) -> list[str] | None:
        if known is None:
            return models
        for model in models or ():
            if model not in known:
                raise PydanticCustomError("model_unknown", "unknown model", {"model": model})
        return models

    return check


def model_ids(known: Collection[str] | None) -> Any:
    """null (every model) or a list of model ids: the configuration's (`known`), or any (None)."""
    schema = _model_ids_schema(known)
    return Annotated[list[StrictStr] | None, AfterValidator(_known_models(known)), WithJsonSchema(schema)]


def _model_ids_schema(known: Collection[str] | None) -> dict[str, Any]:
    items: dict[str, Any] = {"type": "string"} if known is None else {"enum": sorted(known)}
    return {
        "type": ["array", "null"],
        "items": items,
        "description": "null (every model) or the model ids the key may use",
    }


ModelIds = Annotated[list[StrictStr] | None, WithJsonSchema(_model_ids_schema(None))]


class KeyRequest(BaseModel):
    """POST /admin/keys: a new API key."""

    model_config = STRICT

    name: Name
    tokens: Tokens = None
    models: ModelIds = None
    rate_limit_per_minute: Limit = None
    max_concurrent_jobs: Limit = None


class KeyUpdate(BaseModel):
    """PATCH /admin/keys/{key_id}: the fields sent change (null resets to the default); tokens move
    through /credit, and a key is revoked with DELETE."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: Annotated[Name | None, AfterValidator(_present), WithJsonSchema(NAME_SCHEMA)] = None
    models: ModelIds = None
    rate_limit_per_minute: Limit = None
    max_concurrent_jobs: Limit = None


def _non_zero(tokens: int) -> int:
    if tokens == 0:
        raise PydanticCustomError("zero", "zero")
    return tokens


class Credit(BaseModel):
    """POST /admin/keys/{key_id}/credit: tokens added, or (negative) taken away, never below 0."""

    model_config = STRICT

    tokens: Annotated[
        StrictInt,
        Field(ge=-MAX_INTEGER, le=MAX_INTEGER),
        AfterValidator(_non_zero),
        WithJsonSchema(
            {"type": "integer", "minimum": -MAX_INTEGER, "maximum": MAX_INTEGER, "not": {"const": 0}}
        ),
    ]
    note: Annotated[
        StrictStr | None,
        AfterValidator(_label_or_empty(MAX_NOTE_CHARS)),
        WithJsonSchema({"type": ["string", "null"], "maxLength": MAX_NOTE_CHARS}),
    ] = None


def key_models(known: Collection[str]) -> tuple[type[KeyRequest], type[KeyUpdate]]:
    """KeyRequest and KeyUpdate whose `models` take only the configuration's model ids."""
    field = (model_ids(known), None)
    create = create_model("KeyRequest", __base__=KeyRequest, models=field)
    update = create_model("KeyUpdate", __base__=KeyUpdate, models=field)
    return create, update
