"""Field types the contract's models share."""

from __future__ import annotations

from typing import TypeVar, Union

from pydantic.json_schema import SkipJsonSchema

T = TypeVar("T")

# A field a body may leave out but never sends as null: `x: Omittable[int] = None` (the published
# schema says integer, not integer-or-null).
Omittable = Union[T, SkipJsonSchema[None]]  # noqa: UP007 (a generic alias needs Union)
