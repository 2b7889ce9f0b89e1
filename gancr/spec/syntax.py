"""Spec text to plain data, strictly: duplicate keys, unsafe tags, deep nesting and NaN are errors.

YAML's safe loader keeps the last of two equal keys and JSON's parser takes ``NaN`` and
``Infinity``; a spec is read so that neither happens silently. Data of any origin (a file, a
mapping, a spec stored in a checkpoint) is checked by :func:`check_plain_values` before it
is merged or validated: nothing nests deeper than :data:`~gancr.storage.integrity.MAX_DEPTH`
(hostile input would otherwise end in ``RecursionError``), and no number is NaN or infinite
(a learning rate of ``.inf`` would train a generator of NaNs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import yaml

from gancr.errors import SpecError
from gancr.storage.integrity import MAX_DEPTH, depth

__all__ = ["parse_spec_text", "check_plain_values"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not the last one wins)."""

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
            Python code, nesting too deep, or a NaN or infinite number.
    """
    try:
        if kind == "JSON":
            data = json.loads(text, object_pairs_hook=_unique_json_keys)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise SpecError([("", f"not valid YAML: {exc.problem or exc.context}{where}")], source) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise SpecError([("", f"not valid {kind}: {exc}")], source) from None
    except RecursionError:
        raise SpecError([("", f"not a spec: the {kind} nests too deeply")], source) from None
    check_plain_values(data, source)
    return data


def check_plain_values(data: Any, source: str | None = None) -> None:
    """No nesting deeper than :data:`~gancr.storage.integrity.MAX_DEPTH`, no NaN or infinite number, anywhere.

    Raises:
        SpecError: naming the path of each non-finite number.
    """
    if depth(data) > MAX_DEPTH:
        raise SpecError([("", f"the spec nests more than {MAX_DEPTH} levels deep")], source)
    errors = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Mapping):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append((path, f"must be a finite number, got {value}"))
    if errors:
        raise SpecError(sorted(errors), source)
