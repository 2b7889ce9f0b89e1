"""Specs that compose: ``base: [a.yaml, b.yaml]`` in a spec, and several spec files merged in order.

A spec file may name the files it builds on with ``base:`` (one path or a list, relative to
the file that names them). The bases are read first, in order (each with its own bases), then
the file itself, each merged over what came before:

- mappings merge key by key, recursively;
- a component mapping (one with ``name``) whose ``name`` differs from the one before replaces
  it whole (``encoder: {name: conv}`` over ``{name: vgg19, layer: relu4_1}`` drops ``layer``);
- anything else (numbers, strings, lists such as ``losses.content`` or ``training.stages``)
  replaces the value before.

Every value remembers the file it came from, so a validation error names the file and the
path in it (:func:`origin_of`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from gancr.errors import SpecError
from gancr.spec.syntax import check_plain_values, parse_spec_text

__all__ = ["BASE_KEY", "Composed", "compose", "read_spec_file", "merge", "origin_of"]

#: The top-level key that names a spec's bases.
BASE_KEY = "base"

Origins = dict[tuple[Any, ...], str]


def read_spec_file(path: Path, named_by: str | None = None) -> Any:
    """The data of one YAML or JSON file (``{}`` for an empty one); a :class:`SpecError` naming it otherwise."""
    where = str(path) if named_by is None else named_by
    prefix = "" if named_by is None else f"{BASE_KEY}: "
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([(BASE_KEY if named_by else "", f"{prefix}no such spec file: {path}")], where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([(BASE_KEY if named_by else "", f"{prefix}cannot read {path}: {exc}")], where) from None
    data = parse_spec_text(text, "JSON" if path.suffix.lower() == ".json" else "YAML", str(path))
    return {} if data is None else data


class Composed:
    """The merged data of several specs, and the file each value came from."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origins: Origins = {}
        self.files: list[str] = []

    def add(self, data: Any, source: str, base_dir: Path, chain: tuple[str, ...] = ()) -> None:
        """Merge ``data`` (read from ``source``) over what is there, its bases first."""
        if not isinstance(data, Mapping):
            raise SpecError([("", f"a spec must be a mapping at the top level, got {type(data).__name__}")], source)
        data = dict(data)
        bases = data.pop(BASE_KEY, None)
        if bases is not None:
            if isinstance(bases, str):
                bases = [bases]
            if not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
                raise SpecError([(BASE_KEY, f"expected a path or a list of paths, got {bases!r}")], source)
            for item in bases:
                path = Path(item).expanduser()
                path = path if path.is_absolute() else base_dir / path
                key = os.path.normpath(os.path.abspath(path))
                if key in chain:
                    cycle = " -> ".join([*chain[chain.index(key):], key])
                    raise SpecError([(BASE_KEY, f"bases form a cycle: {cycle}")], source)
                self.add(read_spec_file(path, named_by=source), str(path), path.parent, (*chain, key))
        self.files.append(source)
        self.data = merge(self.data, data, self.origins, source)


def merge(before: Any, after: Any, origins: Origins, source: str, path: tuple[Any, ...] = ()) -> Any:
    """``after`` merged over ``before`` (see the module's rules); ``origins`` records ``source`` for what it sets."""
    if isinstance(before, Mapping) and isinstance(after, Mapping) and not _swaps_component(before, after):
        out = dict(before)
        for key, value in after.items():
            out[key] = merge(before.get(key), value, origins, source, (*path, key))
        return out
    for key in [k for k in origins if k[: len(path)] == path]:
        del origins[key]
    origins[path] = source
    return copy.deepcopy(after)


def _swaps_component(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return "name" in before and "name" in after and before["name"] != after["name"]


def origin_of(path: Sequence[Any], origins: Origins) -> str | None:
    """The file that set the value at ``path`` (or at the nearest enclosing path)."""
    parts = tuple(path)
    for n in range(len(parts), -1, -1):
        if parts[:n] in origins:
            return origins[parts[:n]]
    return None


def compose(items: Sequence[Any]) -> Composed:
    """Merge spec files and mappings in order (each file's bases before it).

    Args:
        items: paths (``str`` / ``os.PathLike``) and mappings; a mapping's relative ``base``
            paths are taken from the working directory.
    """
    composed = Composed()
    for item in items:
        if isinstance(item, Mapping):
            check_plain_values(item, "<mapping>")  # before anything recurses into it
            composed.add(copy.deepcopy(dict(item)), "<mapping>", Path.cwd())
        else:
            path = Path(os.fspath(item))
            key = os.path.normpath(os.path.abspath(path))
            composed.add(read_spec_file(path), os.fspath(item), path.parent, (key,))
    return composed
