"""Holding what the gateway sends to gateway/contract's models: valid, and no field the model lacks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.contract.events import EVENT, EVENTS


def fields(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def check(model: type[BaseModel], data: Any) -> BaseModel:
    """`data` as `model`, asserting it carries no field the model does not declare."""
    parsed = model.model_validate(data)
    undeclared = set(data) - fields(model)
    assert not undeclared, f"{model.__name__} lacks {sorted(undeclared)}: {data}"
    return parsed


def check_event(data: dict[str, Any]) -> BaseModel:
    """An event's data as its status's model (Event is a union on `status`)."""
    parsed: BaseModel = EVENT.validate_python(data)
    assert type(parsed) in EVENTS
    return check(type(parsed), data)


def check_items(model: type[BaseModel], page: dict[str, Any], item: type[BaseModel]) -> None:
    check(model, page)
    for entry in page["items"]:
        check(item, entry)
