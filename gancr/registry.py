"""The component registry, as users see it: ``gancr.registry.register / get / list``.

:class:`Registry` is the table (:mod:`gancr._registry`); the process-wide one, filled by the
plugins, is :func:`gancr.plugins.get_registry`. The functions below act on it, so that a
script or a notebook can add a component without writing a plugin::

    gancr.registry.register("neck", "mix", Mix, params=MixParams)

Building a component from its spec is :func:`gancr.builder.build_component`
(``gancr.build_component``).
"""

from __future__ import annotations

import builtins
from typing import Any, Callable

from gancr._registry import KINDS, ComponentParams, Entry, PluginInfo, Registry
from gancr.plugins import get_registry, register_python_component

__all__ = ["KINDS", "Entry", "Registry", "ComponentParams", "PluginInfo", "register", "get", "list"]


def register(kind: str, name: str, factory: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Register a component from Python code (outside a plugin package) in the global registry.

    It survives registry rebuilds (it belongs to the ``python`` plugin) and errors are
    raised at once. Usable as a decorator when ``factory`` is omitted.
    """
    if factory is None:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            register_python_component(kind, name, fn, **kwargs)
            return fn

        return decorator
    register_python_component(kind, name, factory, **kwargs)
    return factory


def get(kind: str, name: str) -> Entry:
    """The entry of ``kind`` called ``name`` in the global registry."""
    return get_registry().get(kind, name)


def list(kind: str | None = None, pattern: str = "*") -> builtins.list[str]:  # noqa: A001
    """Sorted component names of ``kind`` in the global registry (see :meth:`Registry.list`)."""
    return get_registry().list(kind, pattern)
