"""Slots: where a spec (or a component's parameters) holds a component of some kind.

``Slot["encoder"]`` annotates a field; :mod:`gancr.spec.binding` later replaces every slot
with the union of the registered encoders' parameter models.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from gancr._registry import KINDS

__all__ = ["SlotMarker", "ComponentSpec", "Slot", "slot_type_name"]


class SlotMarker:
    """The metadata of ``Slot[kind]``: which kind of component a field holds."""

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(f"Slot[{kind!r}]: unknown kind; kinds are {', '.join(KINDS)}")
        self.kind = kind

    def __repr__(self) -> str:
        return f"Slot[{self.kind!r}]"


class ComponentSpec(BaseModel):
    """An unbound component spec: ``name`` plus its parameters (bound ones are stricter)."""

    model_config = ConfigDict(extra="allow")
    name: str


class Slot:
    """``Slot["encoder"]`` annotates a field that holds a component spec of that kind.

    Use it in a spec model or in a component's parameter model; give a default as a mapping
    with ``validate_default=True``, e.g.
    ``encoder: Slot["encoder"] = Field({"name": "vgg19"}, validate_default=True)``.
    """

    def __class_getitem__(cls, kind: str) -> Any:
        return Annotated[ComponentSpec, SlotMarker(kind)]


def slot_type_name(kind: str) -> str:
    """``EncoderSlot``-style name of a kind's bound union (a forward reference while binding)."""
    return "".join(part.capitalize() for part in kind.split("_")) + "Slot"
