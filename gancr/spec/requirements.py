"""A spec's ``requires:`` list: the plugin distributions (and versions) it needs."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from gancr.errors import SpecError

__all__ = ["check_requirements", "missing_requirements"]


def missing_requirements(requires: list[str]) -> list[tuple[str, str]]:
    """(path, message) for each requirement that is malformed, missing or too old."""
    from packaging.requirements import InvalidRequirement, Requirement

    problems = []
    for i, text in enumerate(requires):
        path = f"requires.{i}"
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            problems.append((path, f"{text!r} is not a requirement like 'gancr-cut>=0.1': {exc}"))
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append((path, f"{req.name} is not installed; install it with: pip install '{text}'"))
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(
                (path, f"{req.name} {version} is installed but the spec needs {text}; "
                       f"upgrade it with: pip install --upgrade '{text}'")
            )
    return problems


def check_requirements(spec: Any) -> None:
    """Raise :class:`SpecError` naming each unmet requirement of ``spec.requires``."""
    problems = missing_requirements(list(getattr(spec, "requires", []) or []))
    if problems:
        raise SpecError(problems)
