"""Binding slots to the registry: every ``Slot[kind]`` becomes a tagged union of the parameter
models of the registered components of that kind, built after the plugins load.

A component's parameter model is made strict (unknown fields are errors) and given ``name``
(and ``weight`` for losses); models whose fields hold slots, the spec's sections as well as
components' own parameter models, get bound subclasses. Everything is rebuilt when the
registry changes (its ``generation``).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Annotated, Any, ForwardRef, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, create_model, model_validator
from pydantic_core import PydanticCustomError

from gancr._registry import KINDS, Registry
from gancr.plugins import get_registry
from gancr.spec.sections import check_unknown_fields
from gancr.spec.slots import SlotMarker, slot_type_name

__all__ = ["LOSS_KINDS", "Binder", "Bound", "bind"]

LOSS_KINDS = ("content_loss", "style_loss")


class Binder:
    """Makes registry-bound copies of models whose fields hold :class:`Slot` annotations."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.bound: dict[type, type] = {}
        self.component_models: dict[tuple[str, str], type[BaseModel]] = {}
        self.namespace: dict[str, Any] = {}

    # -- annotations --

    def annotation(self, tp: Any) -> tuple[Any, bool]:
        """``tp`` with slots replaced by forward references to the bound unions."""
        origin = get_origin(tp)
        if origin is Annotated:
            base, *meta = get_args(tp)
            markers = [m for m in meta if isinstance(m, SlotMarker)]
            if markers:
                return ForwardRef(slot_type_name(markers[0].kind)), True
            new, changed = self.annotation(base)
            return (Annotated[(new, *meta)] if changed else tp), changed
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            new = self.model(tp)
            return new, new is not tp
        args = get_args(tp)
        if not args or origin is Literal:
            return tp, False
        new_args, changed = [], False
        for arg in args:
            new_arg, c = self.annotation(arg)
            new_args.append(new_arg)
            changed |= c
        if not changed:
            return tp, False
        if origin in (Union,) or type(tp).__name__ == "UnionType":
            return Union[tuple(new_args)], True
        if origin in (list, tuple, dict, set, frozenset):
            return origin[tuple(new_args) if len(new_args) > 1 else new_args[0]], True
        return tp, False

    def model(self, cls: type[BaseModel]) -> type[BaseModel]:
        """A subclass of ``cls`` whose slot fields are bound (``cls`` itself if it has none)."""
        if cls in self.bound:
            return self.bound[cls]
        self.bound[cls] = cls  # recursion guard
        fields: dict[str, Any] = {}
        for fname, info in cls.model_fields.items():
            new, changed = self.annotation(info.annotation)
            for meta in info.metadata:  # Slot annotations folded into metadata by pydantic
                if isinstance(meta, SlotMarker):
                    new, changed = ForwardRef(slot_type_name(meta.kind)), True
            if changed:
                field = copy.copy(info)
                field.metadata = [m for m in info.metadata if not isinstance(m, SlotMarker)]
                _defaults_as_data(field)
                fields[fname] = (new, field)
        if not fields:
            return cls
        bound = create_model(cls.__name__, __base__=cls, __module__=cls.__module__, **fields)
        bound.__doc__ = cls.__doc__
        self.bound[cls] = bound
        return bound

    # -- components --

    def component_model(self, kind: str, entry: Any) -> type[BaseModel]:
        params = entry.params
        strict_config = ConfigDict(**{**params.model_config, "extra": "forbid"})
        strict = type(
            params.__name__,
            (params,),
            {
                "model_config": strict_config,
                "__module__": params.__module__,
                "_reject_unknown_fields": model_validator(mode="wrap")(
                    classmethod(check_unknown_fields)
                ),
            },
        )
        base = self.model(strict)
        fields: dict[str, Any] = {
            "name": (Literal[tuple(entry.names)], Field(description=f"the {kind} {entry.name!r}")),
        }
        if kind in LOSS_KINDS and "weight" not in params.model_fields:
            fields["weight"] = (float, Field(1.0, ge=0, description="weight of this term"))
        title = f"{slot_type_name(kind)[:-4]}_{entry.name}".replace("-", "_").replace(".", "_")
        model = create_model(title, __base__=base, __module__="gancr.spec.bound", **fields)
        model.__doc__ = entry.summary or None
        model.model_config["title"] = f"{kind} {entry.name}"
        model.__gancr_component__ = (kind, entry.name)  # type: ignore[attr-defined]
        return model

    def slot_type(self, kind: str) -> Any:
        entries = self.registry.entries(kind)
        members = [self.component_models[(kind, e.name)] for e in entries]
        aliases = {alias: e.name for e in entries for alias in e.aliases}
        if not members:
            plugins = ", ".join(self.registry.plugins) or "(none)"

            def none_registered(value: Any) -> Any:
                raise PydanticCustomError(
                    "no_component",
                    "no {kind} is registered (plugins loaded: {plugins})",
                    {"kind": kind, "plugins": plugins},
                )

            from pydantic import PlainValidator, WithJsonSchema

            return Annotated[Any, PlainValidator(none_registered), WithJsonSchema({"type": "object"})]

        def tag_of(value: Any) -> str | None:
            name = value.get("name") if isinstance(value, Mapping) else getattr(value, "name", None)
            if not isinstance(name, str):
                return None
            return aliases.get(name, name)

        tagged = tuple(Annotated[m, Tag(e.name)] for m, e in zip(members, entries))
        return Annotated[
            Union[tagged] if len(tagged) > 1 else Union[tagged + (Annotated[_NeverModel, Tag("\0")],)],
            Discriminator(
                tag_of,
                custom_error_type=f"unknown_component:{kind}",
                custom_error_message=f"unknown {kind}",
            ),
        ]


def _as_data(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, (list, tuple)):
        return type(value)(_as_data(v) for v in value)
    return value


def _defaults_as_data(field: Any) -> None:
    """Make a rebound field's default plain data, validated into the bound models."""
    from pydantic_core import PydanticUndefined

    factory = field.default_factory
    if factory is not None:
        field.default_factory = lambda: _as_data(factory())
    elif field.default is not PydanticUndefined:
        field.default = _as_data(field.default)
    field.validate_default = True


class _NeverModel(BaseModel):
    """A placeholder member so a one-member tagged union stays a union (never selected)."""

    model_config = ConfigDict(json_schema_extra={"not": {}})


class Bound:
    """Everything bound to one registry: the root model, the component models, the slot adapters."""

    def __init__(self, registry: Registry, root: type[BaseModel]):
        binder = Binder(registry)
        for kind in KINDS:
            for entry in registry.entries(kind):
                binder.component_models[(kind, entry.name)] = binder.component_model(kind, entry)
        for kind in KINDS:
            binder.namespace[slot_type_name(kind)] = binder.slot_type(kind)
        spec = binder.model(root)
        models = [spec, *binder.bound.values(), *binder.component_models.values()]
        for model in models:
            model.model_rebuild(force=True, _types_namespace=binder.namespace)
        self.registry = registry
        self.spec = spec
        self.component_models = binder.component_models
        self.adapters = {
            kind: TypeAdapter(binder.namespace[slot_type_name(kind)]) for kind in KINDS
        }


_bound_lock = threading.RLock()
_bound_cache: tuple[Registry, int, type[BaseModel], Bound] | None = None


def bind(root: type[BaseModel], registry: Registry | None = None) -> Bound:
    """``root`` and every component model bound to ``registry`` (default: the plugins'),
    made once per registry generation."""
    global _bound_cache
    registry = registry or get_registry()
    with _bound_lock:
        cache = _bound_cache
        if cache is None or cache[0] is not registry or cache[1] != registry.generation or cache[2] is not root:
            _bound_cache = cache = (registry, registry.generation, root, Bound(registry, root))
        return cache[3]
