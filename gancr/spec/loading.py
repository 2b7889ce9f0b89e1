"""Reading a spec: YAML or JSON files, mappings, ``--set path=value`` overrides, defaults."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gancr.errors import SpecError
from gancr.spec.binding import bind
from gancr.spec.compose import Composed, compose, origin_of
from gancr.spec.messages import error_messages
from gancr.spec.root import MAX_REQUIRES, Spec
from gancr.spec.syntax import check_plain_values, check_shape, read_yaml

__all__ = ["load_spec", "default_spec", "apply_overrides"]


def load_spec(
    path_or_mapping: str | os.PathLike[str] | Mapping[str, Any] | Spec | Sequence[str | os.PathLike[str] | Mapping[str, Any]],
    overrides: Iterable[str] = (),
) -> Spec:
    """Read and validate a spec from a YAML or JSON file, a mapping, or several of them merged in order.

    A file may name the files it builds on (``base: [a.yaml, b.yaml]``, relative to it); they
    are merged first, in order, then the file itself (see :mod:`gancr.spec.compose`).

    Args:
        path_or_mapping: a ``.yaml``/``.yml``/``.json`` path, a dict, a ``Spec``, or a list
            of paths and dicts merged in order (later ones win).
        overrides: ``path.to.field=value`` strings applied before validation (values are
            parsed as YAML: ``training.stages.0.steps=5``, ``model.neck={name: identity}``).

    Raises:
        SpecError: every error, by path (``model.generator.encoder.layer: ...``); when the
            spec was merged from several files, each error also names the file its value came from.
    """
    source: str | None = None
    composed = None
    if isinstance(path_or_mapping, BaseModel):
        data: Any = path_or_mapping.model_dump(mode="json")
    elif isinstance(path_or_mapping, (str, os.PathLike, Mapping)) or (
        isinstance(path_or_mapping, Sequence) and not isinstance(path_or_mapping, (str, bytes))
    ):
        items = [path_or_mapping] if isinstance(path_or_mapping, (str, os.PathLike, Mapping)) else list(path_or_mapping)
        if not items:
            raise SpecError([("", "no spec given")])
        if isinstance(items[-1], (str, os.PathLike)):
            source = os.fspath(items[-1])
        composed = compose(items)
        data = composed.data
    else:
        raise SpecError([("", f"expected a path or a mapping, got {type(path_or_mapping).__name__}")])
    check_plain_values(data, source)
    bound = bind(Spec)
    overrides = list(overrides)
    if overrides:
        try:  # overrides apply to the resolved spec, so they can reach into defaults
            data = bound.spec.model_validate(data).model_dump(mode="json")
        except ValidationError:
            pass  # report the errors after the overrides, which may fix some
        data = apply_overrides(data, overrides)
        check_plain_values(data, source)
    try:
        spec = bound.spec.model_validate(data)
    except ValidationError as exc:
        errors = error_messages(exc, data, bound.registry)
        if composed is not None and len(composed.files) > 1:
            errors = [_with_origin(path, message, composed, overrides) for path, message in errors]
        requires = data.get("requires")
        if isinstance(requires, list) and len(requires) <= MAX_REQUIRES and all(isinstance(r, str) for r in requires):
            # a component of a missing plugin is "unknown": say first which plugin is missing
            from gancr.spec.requirements import missing_requirements

            errors = missing_requirements(requires) + errors
        raise SpecError(errors, source) from None
    return spec  # type: ignore[return-value]


def _with_origin(path: str, message: str, composed: Composed, overrides: list[str]) -> tuple[str, str]:
    """An error of a merged spec, with the file that set the value it is about."""
    if any(item.partition("=")[0].strip() == path or path.startswith(item.partition("=")[0].strip() + ".")
           for item in overrides):
        return path, f"{message} (set by --set)"
    parts = [int(p) if p.isdigit() else p for p in path.split(".")] if path else []
    origin = origin_of(parts, composed.origins)
    return path, message if origin is None else f"{message} (in {origin})"


def default_spec() -> Spec:
    """The spec with every default: a small conv generator, PatchGAN, L1 + LSGAN."""
    return load_spec({})


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise SpecError([(item, "an override must look like path.to.field=value")])
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise SpecError([(item, "an override needs a path before '='")])
    if not raw.strip():
        return key.split("."), ""
    try:  # read as a spec file is: a duplicate key is an error, and the value's shape is checked
        value, anchors = read_yaml(raw)
    except yaml.YAMLError as exc:
        raise SpecError([(key, f"cannot parse the value {raw!r}: {exc}")]) from None
    except RecursionError:
        raise SpecError([(key, "cannot parse the value: it nests too deeply")]) from None
    check_shape(value, anchors=anchors, at=key, what="the value of --set")
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``path.to.field=value`` set (list indices allowed).

    Example:
        >>> apply_overrides({"training": {"stages": [{"name": "joint", "steps": 9}]}},
        ...                 ["training.stages.0.steps=5"])
        {'training': {'stages': [{'name': 'joint', 'steps': 5}]}}
    """
    result = copy.deepcopy(dict(data))
    for item in overrides:
        parts, value = _parse_override(item)
        cur: Any = result
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(cur, list):
                try:
                    index = int(part)
                except ValueError:
                    raise SpecError([(where, f"{'.'.join(parts[:i]) or '<root>'} is a list: use an index, got {part!r}")]) from None
                if not -len(cur) <= index < len(cur):
                    raise SpecError([(where, f"index {index} is out of range (the list has {len(cur)} items)")])
                if last:
                    cur[index] = value
                else:
                    cur = cur[index]
            elif isinstance(cur, dict):
                if last:
                    cur[part] = value
                else:
                    if cur.get(part) is None:
                        cur[part] = {}
                    cur = cur[part]
            else:
                raise SpecError([(where, f"cannot set a field inside {type(cur).__name__} value {cur!r}")])
    return result
