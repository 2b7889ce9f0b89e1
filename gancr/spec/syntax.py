"""Spec text to plain data, strictly: duplicate keys, unsafe tags, deep, huge or endless data and NaN are errors.

YAML's safe loader keeps the last of two equal keys and JSON's parser takes ``NaN`` and
``Infinity``; a spec is read so that neither happens silently. Data of any origin (a file, a
mapping, a ``--set`` value, a spec stored in a checkpoint) is checked by
:func:`check_plain_values` before it is merged or validated:

- its shape (:func:`check_shape`): nothing nests deeper than
  :data:`~gancr.storage.integrity.MAX_DEPTH` (hostile input would otherwise end in
  ``RecursionError``), nothing holds more than :data:`~gancr.storage.integrity.MAX_VALUES`
  values once YAML aliases are expanded (a "billion laughs" of a few lines would otherwise
  expand to 10^9 values in whatever walks it next), and nothing holds itself. It is measured
  on the loaded objects, each shared one (an alias) visited once, so the check itself takes
  the time of the text, whatever the text expands to; an error names the path and the anchor;
- its numbers: none is NaN or infinite (a learning rate of ``.inf`` would train a generator
  of NaNs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import yaml

from gancr.errors import SpecError
from gancr.storage.integrity import Overrun, overrun

__all__ = ["parse_spec_text", "read_yaml", "check_plain_values", "check_shape"]

#: Where YAML anchors were defined: id of the container an anchor names -> ``&name (line L, column C)``.
Anchors = dict[int, str]


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not the last
    one wins); it remembers where each anchor of a mapping or list was defined."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.anchor_of: dict[yaml.Node, str] = {}
        self.anchors_by_id: Anchors = {}

    def compose_sequence_node(self, anchor: str | None) -> yaml.SequenceNode:
        node = super().compose_sequence_node(anchor)
        if anchor is not None:
            self.anchor_of[node] = anchor
        return node

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        if anchor is not None:
            self.anchor_of[node] = anchor
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        data = super().construct_object(node, deep=deep)
        anchor = self.anchor_of.get(node)
        if anchor is not None:
            mark = node.start_mark
            self.anchors_by_id[id(data)] = f"&{anchor} (line {mark.line + 1}, column {mark.column + 1})"
        return data

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (lines {seen[key].line + 1} and "
                    f"{key_node.start_mark.line + 1}); remove one", None,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> tuple[Any, Anchors]:
    """The data of YAML text (safe tags only, no duplicate keys), and where its anchors were defined.

    Raises:
        yaml.YAMLError: not valid YAML, a duplicate key, or a tag that names Python code.
        RecursionError: the text nests too deeply for the parser.
    """
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data(), loader.anchors_by_id
    finally:
        loader.dispose()


def _unique_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"the key {k!r} is given twice in one object")
    return dict(pairs)


def parse_spec_text(text: str, kind: str, source: str | None) -> Any:
    """The data of a spec's text (``kind`` is ``"YAML"`` or ``"JSON"``), checked by :func:`check_plain_values`.

    Raises:
        SpecError: not valid YAML/JSON (with the line), a duplicate key, a tag that names
            Python code, nesting too deep, too many values, or a NaN or infinite number.
    """
    anchors: Anchors = {}
    try:
        if kind == "JSON":
            data = json.loads(text, object_pairs_hook=_unique_json_keys)
        else:
            data, anchors = read_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise SpecError([("", f"not valid YAML: {exc.problem or exc.context}{where}")], source) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise SpecError([("", f"not valid {kind}: {exc}")], source) from None
    except RecursionError:
        raise SpecError([("", f"not a spec: the {kind} nests too deeply")], source) from None
    check_plain_values(data, source, anchors=anchors)
    return data


def _anchor_note(found: Overrun, anchors: Anchors | None) -> str:
    """``; see the anchor &x (line 3, column 5)``: the innermost anchor on the way to the place, or one it uses."""
    if not anchors:
        return ""
    for node in reversed(found.nodes):
        if id(node) in anchors:
            return f"; see the anchor {anchors[id(node)]}"
    last = found.nodes[-1]
    for child in last.values() if isinstance(last, Mapping) else last:
        if id(child) in anchors:
            return f"; it uses the anchor {anchors[id(child)]}"
    return ""


def check_shape(data: Any, source: str | None = None, *, anchors: Anchors | None = None, at: str = "",
                what: str = "the spec") -> None:
    """No nesting deeper than :data:`~gancr.storage.integrity.MAX_DEPTH`, no more than
    :data:`~gancr.storage.integrity.MAX_VALUES` values (aliases expanded), nothing that holds itself.

    Args:
        anchors: where the YAML anchors of ``data`` were defined (:func:`read_yaml`), to name them.
        at: the path ``data`` goes to in a spec (a ``--set`` value's), put before the paths of errors.
        what: what ``data`` is, for the message.

    Raises:
        SpecError: naming the limit, the path and the anchor, if any.
    """
    found = overrun(data)
    if found is not None:
        where = ".".join(p for p in (at, found.where()) if p)
        raise SpecError([(where, f"{what} {found.describe()}{_anchor_note(found, anchors)}")], source)


def check_plain_values(data: Any, source: str | None = None, *, anchors: Anchors | None = None) -> None:
    """The shape of ``data`` (:func:`check_shape`), and no NaN or infinite number anywhere.

    Raises:
        SpecError: naming the limit and the place, or the path of each non-finite number.
    """
    check_shape(data, source, anchors=anchors)
    errors = []
    seen: set[int] = set()  # a shared container (an alias) is reported where it is first used
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, (Mapping, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
        if isinstance(value, Mapping):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append((path, f"must be a finite number, got {value}"))
    if errors:
        raise SpecError(sorted(errors), source)
