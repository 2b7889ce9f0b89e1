"""The registry table alone: kinds, entries, lookup with suggestions, listing.

It imports nothing of gancr but its errors. Building a component (validating its parameters
against the spec's models, calling its factory) is :func:`gancr.builder.build_component`;
the process-wide registry that plugins fill is :func:`gancr.plugins.get_registry`, and
:mod:`gancr.registry` is the public face of both.

Every component — built-in or from a plugin — is one :class:`Entry`: a factory (a class or a
function returning an ``nn.Module``), a pydantic model of its parameters, and the plugin that
registered it. Spec validation, the JSON Schema, ``gancr components``, the docs' catalogue
and the contract tests are all derived from these entries.

Factories are called with the component's parameters as keyword arguments, plus what its
kind needs from the parts already built (see :data:`KINDS`).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import inspect
import re
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from gancr.errors import DuplicateComponentError, GancrError, UnknownComponentError

__all__ = ["KINDS", "Entry", "Registry", "ComponentParams", "PluginInfo"]

#: The kinds of component, and what each factory receives besides its own parameters.
KINDS: dict[str, str] = {
    "encoder": "no extra arguments; the module maps (B, 3, H, W) in [0, 1] to a list of "
    "feature maps and states them in `feature_info` (channels, reduction, name).",
    "neck": "`channels`: the channels of the encoder's deepest feature; the module maps "
    "(B, C, h, w) to (B, out_channels, h, w) and has `out_channels`.",
    "decoder": "`feature_info` (the encoder's, with the neck's channels at the deepest "
    "level) and `out_channels` (3); the module maps the feature list to (B, 3, H, W).",
    "discriminator": "`in_channels` (3); the module maps (B, 3, H, W) to logits: a tensor "
    "(B, 1, h, w) or (B, 1), or a list of such tensors (one per scale).",
    "content_loss": "no extra arguments; `forward(x, y, context)` returns a scalar tensor.",
    "style_loss": "no extra arguments; `generator_loss(batch)` and "
    "`discriminator_loss(batch)` return scalar tensors (or None for a side it lacks).",
    "balancer": "no extra arguments; `combine(content, style, w_c=, w_g=, ...)` returns the "
    "total loss and the weights used.",
}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_.\-]*$")


class ComponentParams(BaseModel):
    """Base class of a component's parameter model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name and, for an installed package, its distribution."""

    name: str
    distribution: str | None = None
    version: str | None = None
    api: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"{self.name} ({self.distribution} {self.version})"
        return self.name


@dataclass(frozen=True)
class Entry:
    """One registered component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel]
    plugin: str
    aliases: tuple[str, ...] = ()
    doc: str = ""
    distribution: str | None = None
    version: str | None = None

    @property
    def summary(self) -> str:
        """The first line of the component's documentation."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass
class Registry:
    """Components by kind and name. Plugins fill it through ``gancr_register_components``.

    Example:
        >>> from gancr.registry import Registry, ComponentParams
        >>> import torch
        >>> reg = Registry()
        >>> class Params(ComponentParams):
        ...     blocks: int = 2
        >>> reg.register("neck", "my_neck", lambda channels, blocks: torch.nn.Identity(), params=Params)
        >>> reg.list("neck")
        ['my_neck']
    """

    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    #: The plugin that the next registrations belong to (see :meth:`registering_for`).
    current_plugin: str = "<python>"
    _entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    _aliases: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})
    _generation: int = 0

    @property
    def generation(self) -> int:
        """Incremented on every change, so that what was derived from the entries (the bound
        spec models) is rebuilt after a late registration."""
        return self._generation

    @contextlib.contextmanager
    def registering_for(self, plugin: str) -> Iterator[Registry]:
        """Record ``plugin`` on every entry registered inside the block (the plugin manager
        calls each plugin's ``gancr_register_components`` in one)."""
        previous, self.current_plugin = self.current_plugin, plugin
        try:
            yield self
        finally:
            self.current_plugin = previous

    # -- registering ------------------------------------------------------------------------

    def register(
        self,
        kind: str,
        name: str,
        factory: Callable[..., Any] | None = None,
        *,
        params: type[BaseModel] | None = None,
        aliases: tuple[str, ...] | list[str] = (),
        doc: str | None = None,
    ) -> Any:
        """Register ``factory`` as component ``name`` of ``kind``.

        Args:
            kind: one of :data:`KINDS`.
            name: lower-case name used in specs (``{name: <name>, ...}``).
            factory: a class or function building the component from its parameters (and
                its kind's build arguments). Omit it to use ``register`` as a decorator.
            params: a pydantic model of the parameters (subclass :class:`ComponentParams`
                so unknown fields are errors); ``None`` means no parameters.
            aliases: other names accepted in specs.
            doc: documentation; defaults to the factory's docstring.

        Raises:
            DuplicateComponentError: the name or an alias is taken; names both plugins.
        """
        if factory is None:

            def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.register(kind, name, fn, params=params, aliases=aliases, doc=doc)
                return fn

            return decorator
        self._check_kind(kind)
        for n in (name, *aliases):
            if not isinstance(n, str) or not _NAME_RE.match(n):
                raise GancrError(
                    f"invalid {kind} name {n!r} (plugin {self.current_plugin}): use lower-case "
                    "letters, digits, '_', '-' or '.', starting with a letter"
                )
        if params is None:
            params = ComponentParams
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise GancrError(
                f"{kind} {name!r} (plugin {self.current_plugin}): params must be a pydantic "
                f"model class, got {params!r}"
            )
        if "name" in params.model_fields:
            raise GancrError(
                f"{kind} {name!r} (plugin {self.current_plugin}): its parameter model must not "
                "define 'name' (the registry adds it)"
            )
        for n in (name, *aliases):
            existing = self.lookup(kind, n)
            if existing is not None:
                raise DuplicateComponentError(
                    f"{kind} {n!r} is registered twice: by plugin {existing.plugin!r} and by "
                    f"plugin {self.current_plugin!r}. Rename one, or block a plugin with "
                    "GANCR_DISABLE_PLUGINS."
                )
        info = self.plugins.get(self.current_plugin)
        entry = Entry(
            kind=kind,
            name=name,
            factory=factory,
            params=params,
            plugin=self.current_plugin,
            aliases=tuple(aliases),
            doc=inspect.cleandoc(doc if doc is not None else (factory.__doc__ or "")),
            distribution=info.distribution if info else None,
            version=info.version if info else None,
        )
        self._entries[kind][name] = entry
        for alias in aliases:
            self._aliases[kind][alias] = name
        self._generation += 1
        return factory

    # -- looking up -------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> Entry:
        """The entry of ``kind`` called ``name`` (or one of its aliases).

        Raises:
            UnknownComponentError: lists close matches and the loaded plugins.
        """
        self._check_kind(kind)
        entry = self.lookup(kind, name)
        if entry is None:
            raise UnknownComponentError(self.unknown_message(kind, name))
        return entry

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return kind in KINDS and self.lookup(kind, name) is not None

    def list(self, kind: str | None = None, pattern: str = "*") -> list[str]:
        """Sorted names of ``kind`` (every kind when ``None``) matching the wildcard ``pattern``."""
        kinds = [kind] if kind is not None else [*KINDS]
        for k in kinds:
            self._check_kind(k)
        names = {n for k in kinds for n in self._entries[k] if fnmatch.fnmatchcase(n, pattern)}
        return sorted(names)

    def entries(self, kind: str | None = None, pattern: str = "*") -> list[Entry]:
        """The entries of ``kind`` (every kind when ``None``), sorted by kind then name."""
        kinds = [kind] if kind is not None else [*KINDS]
        for k in kinds:
            self._check_kind(k)
        return [
            self._entries[k][n]
            for k in kinds
            for n in sorted(self._entries[k])
            if fnmatch.fnmatchcase(n, pattern)
        ]

    def unknown_message(self, kind: str, name: Any) -> str:
        """The error text for an unknown ``name`` of ``kind``: close matches and plugins."""
        known = sorted({*self._entries[kind], *self._aliases[kind]})
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(sorted(self._entries[kind])) or "(none)"
        plugins = ", ".join(self.plugins) or "(none)"
        return (
            f"unknown {kind} {name!r}.{hint} Known: {listing}. "
            f"Plugins loaded: {plugins}."
        )

    def drop_plugin(self, plugin: str) -> None:
        """Forget every entry of ``plugin`` (after its hook failed half-way)."""
        for kind in KINDS:
            for name in [n for n, e in self._entries[kind].items() if e.plugin == plugin]:
                del self._entries[kind][name]
            for alias in [a for a, n in self._aliases[kind].items() if n not in self._entries[kind]]:
                del self._aliases[kind][alias]
        self._generation += 1

    # -- helpers ----------------------------------------------------------------------------

    def lookup(self, kind: str, name: Any) -> Entry | None:
        """The entry of ``kind`` called ``name`` (or an alias), or None; ``kind`` must be valid."""
        if not isinstance(name, str):
            return None
        name = self._aliases[kind].get(name, name)
        return self._entries[kind].get(name)

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            close = difflib.get_close_matches(str(kind), [*KINDS], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownComponentError(
                f"unknown component kind {kind!r}.{hint} Kinds: {', '.join(KINDS)}."
            )
