"""The plugin manager: built-ins, entry points of group ``gancr``, blocking, isolation.

The manager works in a fixed order (as tox does):

1. block the plugins named in ``GANCR_DISABLE_PLUGINS`` (comma-separated plugin names);
2. load every entry point of group ``gancr`` (its name is the plugin's name);
3. register the built-in plugins (:data:`DEFAULT_PLUGINS`, gancr's own components);
4. check that every hook implementation matches a specification (``check_pending``).

A plugin that fails to import, whose hook implementations are misspelt, that is outside the
supported plugin API range, or that raises inside ``gancr_register_components``, gives one
warning naming it and its error, and is left out; everything else keeps working. With
``GANCR_STRICT_PLUGINS=1`` each of these is a :class:`~gancr.errors.PluginError` instead.

The registry is rebuilt from the plugins whenever they change, so a plugin registered for
the duration of a test (:func:`registered_plugin`) is gone afterwards.

All of this process's plugin state is one :class:`PluginState` object; the module's
functions act on it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pluggy

from gancr import hookspecs
from gancr.errors import PluginError
from gancr._registry import PluginInfo, Registry

__all__ = [
    "PLUGIN_API_VERSION",
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginWarning",
    "get_plugin_manager",
    "get_registry",
    "registered_plugin",
    "register_plugin",
    "unregister_plugin",
    "reset",
    "plugin_failures",
    "register_python_component",
    "call_hook",
    "invalidate",
    "snapshot",
]

#: The plugin API that this gancr provides. A plugin may declare the range it supports as
#: a module attribute ``GANCR_PLUGIN_API = ">=1,<2"`` (a PEP 440 specifier).
PLUGIN_API_VERSION = "1.0"

ENTRY_POINT_GROUP = "gancr"

#: Plugins that ship with gancr, as (plugin name, module).
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (("builtin", "gancr.components"),)


class PluginWarning(UserWarning):
    """A plugin was left out because it failed; the message names it and its error."""


class _PythonComponents:
    """The ``python`` plugin: components registered with ``gancr.registry.register`` in code."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    @hookspecs.hookimpl
    def gancr_register_components(self, registry: Registry) -> None:
        for args, kwargs in self.calls:
            registry.register(*args, **kwargs)


PYTHON_PLUGIN = "python"

#: Plugin names an entry point may not take (gancr's own).
_RESERVED = frozenset({name for name, _ in DEFAULT_PLUGINS} | {PYTHON_PLUGIN})


class PluginState:
    """Everything this process knows about its plugins (one object: reset means a new one).

    Attributes:
        lock: guards the fields below.
        manager: the pluggy manager, created (and plugins loaded) on first use.
        registry: the registry built from the plugins, or None when it must be rebuilt.
        infos: the loaded plugins' names, distributions and versions.
        failures: plugins left out, with the reason (as warned).
        python_plugins: plugins registered from Python, in order.
        python_components: the ``python`` plugin (``gancr.registry.register`` in code).
        hook_failures_warned: (plugin, hook) pairs already warned about in :func:`call_hook`.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.manager: pluggy.PluginManager | None = None
        self.registry: Registry | None = None
        self.infos: dict[str, PluginInfo] = {}
        self.failures: dict[str, str] = {}
        self.python_plugins: list[str] = []
        self.python_components = _PythonComponents()
        self.hook_failures_warned: set[tuple[str, str]] = set()


_state = PluginState()


def _strict() -> bool:
    return os.environ.get("GANCR_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def _disabled() -> list[str]:
    raw = os.environ.get("GANCR_DISABLE_PLUGINS", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def _fail(name: str, what: str, exc: BaseException | str, *, strict: bool | None = None) -> None:
    """Record a plugin failure: a warning, or a PluginError when strict."""
    detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else exc
    message = f"gancr plugin {name!r} {what} and was left out: {detail}"
    _state.failures[name] = message
    env_strict = _strict()
    if env_strict if strict is None else strict:
        suffix = " (GANCR_STRICT_PLUGINS is set)" if env_strict else ""
        raise PluginError(message + suffix) from (exc if isinstance(exc, BaseException) else None)
    warnings.warn(message, PluginWarning, stacklevel=3)


def _api_mismatch(plugin: Any) -> str | None:
    """The reason ``plugin`` does not support this plugin API, or None."""
    wanted = getattr(plugin, "GANCR_PLUGIN_API", None)
    if wanted is None:
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        if PLUGIN_API_VERSION in SpecifierSet(str(wanted)):
            return None
    except InvalidSpecifier:
        return f"its GANCR_PLUGIN_API {wanted!r} is not a version specifier"
    return f"it supports gancr plugin API {wanted}, this gancr provides {PLUGIN_API_VERSION}"


def _check_hooks(pm: pluggy.PluginManager, name: str) -> None:
    """Raise PluginValidationError when ``name`` implements a hook that is not specified."""
    plugin = pm.get_plugin(name)
    for hook in pm.get_hookcallers(plugin) or []:
        if not hook.has_spec():
            for impl in hook.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    import difflib

                    close = difflib.get_close_matches(
                        hook.name, [n for n in dir(hookspecs) if n.startswith("gancr_")], n=1
                    )
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise pluggy.PluginValidationError(
                        plugin, f"unknown hook {hook.name!r}{hint}"
                    )


def _register(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo, *, strict: bool | None) -> bool:
    """Register one plugin object; on failure warn (or raise) and leave it out."""
    reason = _api_mismatch(plugin)
    if reason:
        # Outside the supported range: loads, but says so.
        warnings.warn(
            f"gancr plugin {info.name!r} may not work: {reason}", PluginWarning, stacklevel=3
        )
    try:
        pm.register(plugin, name=info.name)
        _check_hooks(pm, info.name)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - isolation is the point
        if pm.get_plugin(info.name) is not None:
            pm.unregister(name=info.name)
        _fail(info.name, "has invalid hook implementations", exc, strict=strict)
        return False
    _state.infos[info.name] = info
    return True


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    seen: set[str] = set()
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    for ep in eps:
        if ep.name in seen or pm.is_blocked(ep.name):
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
        if ep.name in _RESERVED:  # recorded under its entry point, so gancr's own plugin stays in
            _fail(f"{ep.name}={ep.value}", f"(of {info.distribution or 'an unknown package'}) uses a name reserved "
                  "for gancr's own plugins", "rename the entry point")
            continue
        try:
            plugin = ep.load()
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a broken package (even one calling sys.exit) must not break gancr
            _fail(ep.name, f"(entry point {ep.value!r}) failed to import", exc)
            continue
        info = PluginInfo(info.name, info.distribution, info.version, getattr(plugin, "GANCR_PLUGIN_API", None))
        _register(pm, plugin, info, strict=None)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created (and plugins loaded) on first use."""
    with _state.lock:
        if _state.manager is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            pm.add_hookspecs(hookspecs)
            for name in _disabled():
                pm.set_blocked(name)
            _load_entry_points(pm)
            for name, module in DEFAULT_PLUGINS:
                if not pm.is_blocked(name):
                    _register(pm, importlib.import_module(module), PluginInfo(name, "gancr", _version()), strict=True)
            pm.check_pending()
            _state.manager = pm
        return _state.manager


def _version() -> str:
    from gancr import __version__

    return __version__


def _ordered_plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Built-ins first, then entry points by name, then plugins registered from Python."""
    builtin = [n for n, _ in DEFAULT_PLUGINS if pm.get_plugin(n) is not None]
    python = [n for n in _state.python_plugins if pm.get_plugin(n) is not None]
    others = sorted(  # blocked names are listed with plugin None
        n for n, p in pm.list_name_plugin() if n not in builtin and n not in python and p is not None
    )
    return builtin + others + python


def get_registry() -> Registry:
    """The registry of every component of every loaded plugin (rebuilt when plugins change)."""
    with _state.lock:
        if _state.registry is not None:
            return _state.registry
        pm = get_plugin_manager()
        registry = Registry()
        names = [n for n in _ordered_plugin_names(pm) if n not in _state.failures]  # left out: not loaded
        registry.plugins = {n: _state.infos.get(n, PluginInfo(n)) for n in names}
        impls = {i.plugin_name: i.function for i in pm.hook.gancr_register_components.get_hookimpls()}
        for name in names:
            impl = impls.get(name)
            if impl is None or name in _state.failures:
                continue
            try:
                with registry.registering_for(name):
                    impl(registry=registry)
            except (KeyboardInterrupt, GeneratorExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - isolation is the point (sys.exit included)
                registry.drop_plugin(name)
                del registry.plugins[name]
                if name in _state.python_plugins or name in dict(DEFAULT_PLUGINS):
                    raise  # registered from code (or gancr's own): the caller sees the error
                _fail(name, "raised in gancr_register_components", exc)
        _state.registry = registry
        return registry


def plugin_failures() -> dict[str, str]:
    """Plugins left out in this process, with the reason (as warned)."""
    get_registry()
    return dict(_state.failures)


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object from Python (errors are raised, not warned). Returns its name."""
    with _state.lock:
        pm = get_plugin_manager()
        name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin):x}"
        if pm.get_plugin(name) is not None or pm.is_registered(plugin):
            raise PluginError(f"a gancr plugin named {name!r} is already registered")
        _state.failures.pop(name, None)
        try:
            _register(pm, plugin, PluginInfo(name, api=getattr(plugin, "GANCR_PLUGIN_API", None)), strict=True)
        except PluginError:
            _state.failures.pop(name, None)  # raised to the caller, not left out with a warning
            raise
        _state.python_plugins.append(name)
        invalidate()
        try:
            get_registry()
        except Exception:
            unregister_plugin(name)
            raise
        return name


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    with _state.lock:
        pm = get_plugin_manager()
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        if name in _state.python_plugins:
            _state.python_plugins.remove(name)
        _state.infos.pop(name, None)
        _state.failures.pop(name, None)
        invalidate()


@contextlib.contextmanager
def registered_plugin(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` for the duration of a ``with`` block (for tests), then remove it.

    Example:
        >>> import gancr
        >>> class MyPlugin:
        ...     @gancr.hookimpl
        ...     def gancr_register_components(self, registry):
        ...         registry.register("neck", "doctest_neck", lambda channels: None)
        >>> with registered_plugin(MyPlugin(), "doctest"):
        ...     "doctest_neck" in gancr.list_components("neck")
        True
        >>> "doctest_neck" in gancr.list_components("neck")
        False
    """
    registered = register_plugin(plugin, name)
    try:
        yield registered
    finally:
        unregister_plugin(registered)


def register_python_component(kind: str, name: str, factory: Any, **kwargs: Any) -> None:
    """Add a component to the ``python`` plugin (raises at once on a bad or duplicate name)."""
    with _state.lock:
        pm = get_plugin_manager()
        components = _state.python_components
        if pm.get_plugin(PYTHON_PLUGIN) is None:
            pm.register(components, name=PYTHON_PLUGIN)
            _state.python_plugins.append(PYTHON_PLUGIN)
        call = ((kind, name, factory), kwargs)
        components.calls.append(call)
        invalidate()
        try:
            get_registry()
        except Exception:
            components.calls.remove(call)
            invalidate()
            raise


def call_hook(name: str, **kwargs: Any) -> None:
    """Call hook ``name`` on every plugin, each in isolation.

    A plugin that raises gets one warning per hook naming it (a PluginError when
    ``GANCR_STRICT_PLUGINS=1``); the other plugins' implementations still run.
    """
    hook = getattr(get_plugin_manager().hook, name)
    for impl in reversed(hook.get_hookimpls()):
        try:
            impl.function(**{arg: kwargs[arg] for arg in impl.argnames if arg in kwargs})
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a logger plugin (even one calling sys.exit) must not stop training
            if _strict():
                raise PluginError(f"gancr plugin {impl.plugin_name!r} raised in {name}: {exc}") from exc
            if (impl.plugin_name, name) not in _state.hook_failures_warned:
                _state.hook_failures_warned.add((impl.plugin_name, name))
                warnings.warn(
                    f"gancr plugin {impl.plugin_name!r} raised in {name} "
                    f"({type(exc).__name__}: {exc}); its later errors in this hook are not repeated",
                    PluginWarning,
                    stacklevel=2,
                )


def invalidate() -> None:
    """Rebuild the registry from the plugins on its next use."""
    _state.registry = None


def reset() -> None:
    """Forget every plugin; the next use reloads them (re-reading the environment)."""
    global _state
    with _state.lock:
        warned = _state.hook_failures_warned  # a failing hook is warned about once per process
        _state = PluginState()
        _state.hook_failures_warned = warned


def snapshot() -> tuple[Any, ...]:
    """What the loaded plugins are, as a comparable value: it changes when plugins are
    loaded, registered, left out or reset (tests use it to undo only what changed)."""
    pm = _state.manager
    names = tuple(sorted(n for n, _ in pm.list_name_plugin())) if pm is not None else None
    return (
        pm,
        names,
        tuple(_state.python_plugins),
        tuple(map(id, _state.python_components.calls)),
        tuple(sorted(_state.failures)),
    )
