"""Text about components, derived from the registry: listings, parameter tables, the docs' catalogue."""

from __future__ import annotations

import re
import typing
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gancr._registry import KINDS, Entry, Registry
from gancr.spec.slots import SlotMarker

__all__ = ["type_name", "param_rows", "component_rows", "describe_entry", "markdown_catalog", "plugin_label"]


def type_name(annotation: Any) -> str:
    """A short readable name of a parameter's type (``int``, ``list[str] | None``, ``encoder spec``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        markers = [m for m in args[1:] if isinstance(m, SlotMarker)]
        return f"{markers[0].kind} spec" if markers else type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, typing.ForwardRef):
        return re.sub(r"Slot$", " spec", annotation.__forward_arg__)
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    return repr(value)


def param_rows(entry: Entry) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) for each parameter of a component."""
    rows = []
    for fname, field in entry.params.model_fields.items():
        annotation = field.annotation
        slot_meta = [m for m in field.metadata if isinstance(m, SlotMarker)]
        tname = f"{slot_meta[0].kind} spec" if slot_meta else type_name(annotation)
        if slot_meta and type(None) in typing.get_args(annotation):
            tname += " | None"
        rows.append((fname, tname, _default(field), field.description or ""))
    if entry.kind in ("content_loss", "style_loss") and "weight" not in entry.params.model_fields:
        rows.append(("weight", "float", "1.0", "weight of this term"))
    return rows


def plugin_label(registry: Registry, entry: Entry) -> str:
    """``builtin (gancr 0.2.0)``: the plugin and, when known, its distribution and version."""
    if entry.distribution:
        return f"{entry.plugin} ({entry.distribution} {entry.version})"
    return entry.plugin


def component_rows(registry: Registry, kind: str | None = None, pattern: str = "*") -> list[tuple[str, str, str, str]]:
    """(kind, name, plugin, summary) for every component of ``kind`` (all kinds when None)."""
    return [(e.kind, e.name, plugin_label(registry, e), e.summary) for e in registry.entries(kind, pattern)]


def describe_entry(registry: Registry, entry: Entry) -> str:
    """A plain-text page about one component: plugin, aliases, documentation, parameters."""
    lines = [f"{entry.kind} {entry.name!r}", f"  plugin: {plugin_label(registry, entry)}"]
    if entry.aliases:
        lines.append(f"  aliases: {', '.join(entry.aliases)}")
    factory = getattr(entry.factory, "__module__", "?") + "." + getattr(entry.factory, "__qualname__", "?")
    lines.append(f"  factory: {factory}")
    if entry.doc:
        lines.append("")
        lines += [f"  {line}" if line else "" for line in entry.doc.splitlines()]
    rows = param_rows(entry)
    lines.append("")
    if rows:
        lines.append("  parameters:")
        width = max(len(r[0]) for r in rows)
        for name, tname, default, desc in rows:
            lines.append(f"    {name.ljust(width)}  {tname} = {default}" + (f"\n    {' ' * width}  {desc}" if desc else ""))
    else:
        lines.append("  parameters: (none)")
    lines.append("")
    lines.append(f"  build arguments from the trio: {KINDS[entry.kind]}")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_catalog(registry: Registry) -> str:
    """The component catalogue (docs/components.md), one section per kind, from the registry."""
    out = [
        "# Component catalogue",
        "",
        "Generated from the registry by `gancr components --markdown`; do not edit by hand.",
        "Every component is used in a spec as a mapping with `name` and its parameters.",
        "",
    ]
    for kind, contract in KINDS.items():
        entries = registry.entries(kind)
        out += [f"## {kind}", "", _md(contract), ""]
        for entry in entries:
            aliases = f" (aliases: {', '.join(f'`{a}`' for a in entry.aliases)})" if entry.aliases else ""
            out += [f"### `{entry.name}`{aliases}", "", f"Plugin: {plugin_label(registry, entry)}.", ""]
            if entry.doc:
                out += [entry.doc, ""]
            rows = param_rows(entry)
            if rows:
                out += ["| parameter | type | default | description |", "|---|---|---|---|"]
                out += [f"| `{n}` | {_md(t)} | `{_md(d)}` | {_md(desc)} |" for n, t, d, desc in rows]
                out.append("")
    return "\n".join(out).rstrip() + "\n"
