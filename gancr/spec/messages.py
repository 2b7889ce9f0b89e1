"""Validation errors as ``(path, message)`` pairs that name the place and what is known there.

Pydantic's locations carry the union tags (component names) of the bound models; they are
dropped, so a path reads as the spec does: ``model.generator.encoder.layer``. An unknown
component lists the close matches and the loaded plugins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from gancr._registry import KINDS, Registry

__all__ = ["error_messages"]


def _is_tag(part: Any, cur: Any, last: bool, registry: Registry) -> bool:
    """Whether ``part`` of an error's location is a union tag (a component's name).

    Pydantic puts the tag first in the location of an error inside a component, so a part
    that is the component's (canonical) name is the tag even when the component also has a
    parameter of that name (the caller does not take two tags in a row).
    """
    if not (isinstance(cur, Mapping) and isinstance(part, str)):
        return False
    name = cur.get("name")
    if not isinstance(name, str):
        return False
    if part == name or any(
        (entry := registry.lookup(kind, name)) is not None and entry.name == part for kind in KINDS
    ):
        return True
    return part not in cur and not last


def _clean_path(loc: tuple[Any, ...], data: Any, registry: Registry) -> tuple[list[Any], Any]:
    """Drop the union tags pydantic puts in ``loc``; returns (path, the value at the parent)."""
    path: list[Any] = []
    cur = data
    after_tag = False
    for i, part in enumerate(loc):
        if not after_tag and _is_tag(part, cur, i == len(loc) - 1, registry):
            after_tag = True  # the next part is a field of this component, never a tag
            continue
        after_tag = False
        path.append(part)
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, (list, tuple)) and isinstance(part, int) and -len(cur) <= part < len(cur):
            cur = cur[part]
        else:
            cur = None
    return path, cur


def error_messages(exc: ValidationError, data: Any, registry: Registry, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        path, value = _clean_path(tuple(err["loc"]), data, registry)
        etype = err["type"]
        msg = err["msg"]
        if etype.startswith("unknown_component:"):
            kind = etype.partition(":")[2]
            given = err.get("input")
            name = given.get("name") if isinstance(given, Mapping) else getattr(given, "name", None)
            if name is None:
                known = ", ".join(registry.list(kind)) or "(none)"
                article = "an" if kind[0] in "aeiou" else "a"
                msg = f"{article} {kind} needs a 'name'; one of: {known}"
                if not isinstance(given, (Mapping, BaseModel)):
                    msg = f"expected {article} {kind} spec (a mapping with 'name'), got {given!r}; one of: {known}"
            else:
                msg = registry.unknown_message(kind, name)
        elif etype == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        text = ".".join(str(p) for p in ([prefix] if prefix else []) + path)
        if (text, msg) not in seen:
            seen.add((text, msg))
            out.append((text, msg))
    return out
