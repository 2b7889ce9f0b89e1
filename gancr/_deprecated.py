"""The module paths and names of gancr 0.1 that moved: they work for one release, with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

__all__ = ["warn_moved", "moved_names"]


def warn_moved(old: str, new: str) -> None:
    """A ``DeprecationWarning``: ``old`` moved to ``new`` (call it from the old module's body or ``__getattr__``)."""
    warnings.warn(f"{old} moved to {new}; the old name goes away in the next release", DeprecationWarning,
                  stacklevel=3)


def moved_names(old_module: str, new_module: ModuleType, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that gives each of ``names`` from ``new_module``, with a warning."""
    moved = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in moved:
            warn_moved(f"{old_module}.{name}", f"{new_module.__name__}.{name}")
            return getattr(new_module, name)
        raise AttributeError(f"module {old_module!r} has no attribute {name!r}")

    return __getattr__
