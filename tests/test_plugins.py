"""Plugins: registered for one test, installed as packages (entry points), broken, blocked."""

from __future__ import annotations

import inspect
import json
import warnings
from typing import Literal

import pytest
import torch
from pydantic import Field

import gancr
import gancr.cli
from gancr import hookspecs, plugins
from gancr.errors import DuplicateComponentError, PluginError, SpecError, UnknownComponentError
from gancr.plugins import PluginWarning, get_registry
from gancr.registry import ComponentParams

# ----------------------------------------------------------------------------------------
# a plugin registered from Python for one test
# ----------------------------------------------------------------------------------------


class GainParams(ComponentParams):
    gain: float = Field(1.5, gt=0, description="multiplier")
    mode: Literal["mul", "add"] = "mul"
    tag: str = Field(description="a required parameter")


class Gain(torch.nn.Module):
    """Multiplies the bottleneck by a gain (a test neck)."""

    def __init__(self, channels: int, gain: float = 1.5, mode: str = "mul", tag: str = ""):
        super().__init__()
        self.in_channels = self.out_channels = channels
        self.gain, self.mode, self.tag = gain, mode, tag

    def forward(self, x):
        return x * self.gain if self.mode == "mul" else x + self.gain


class GainPlugin:
    @gancr.hookimpl
    def gancr_register_components(self, registry):
        registry.register("neck", "test_gain", Gain, params=GainParams, aliases=("test-gain-alias",))


def _spec_with_neck(neck: dict) -> dict:
    return {
        "model": {
            "generator": {"encoder": {"name": "conv", "widths": [4, 8]}, "neck": neck},
            "content_net": {"share_encoder": True},
            "discriminator": {"name": "patchgan", "layers": 1, "width": 4},
        },
        "training": {"image_size": 16},
    }


def _errors(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(data)
    return dict(exc.value.errors)


def test_a_plugin_registered_for_one_test_is_a_first_class_component():
    with gancr.registered_plugin(GainPlugin(), "test-plugin") as name:
        assert name == "test-plugin"
        # listed, with its plugin
        assert "test_gain" in gancr.list_components("neck")
        assert "test_gain" in gancr.list_components(pattern="test_*")
        entry = get_registry().get("neck", "test_gain")
        assert entry.plugin == "test-plugin" and entry.summary.startswith("Multiplies the bottleneck")
        assert "test-plugin" in get_registry().plugins
        # in the JSON Schema, with its own parameter model
        schema = gancr.Spec.model_json_schema()
        model = schema["$defs"]["Neck_test_gain"]
        assert model["properties"]["gain"]["default"] == 1.5
        assert model["properties"]["gain"]["exclusiveMinimum"] == 0
        assert model["properties"]["mode"]["enum"] == ["mul", "add"]
        assert set(model["required"]) >= {"name", "tag"}
        assert model["additionalProperties"] is False
        assert "Neck_test_gain" in json.dumps(schema["$defs"]["GeneratorSpec"])
        # validated like a built-in: defaults, types, required and unknown fields, aliases
        spec = gancr.load_spec(_spec_with_neck({"name": "test_gain", "tag": "t"}))
        neck = spec.model.generator.neck
        assert (neck.name, neck.gain, neck.mode, neck.tag) == ("test_gain", 1.5, "mul", "t")
        assert gancr.load_spec(_spec_with_neck({"name": "test-gain-alias", "tag": "t"}))
        errors = _errors(_spec_with_neck({"name": "test_gain", "gain": "loud", "mode": "div", "gian": 2}))
        assert "valid number" in errors["model.generator.neck.gain"]
        assert "'mul' or 'add'" in errors["model.generator.neck.mode"]
        assert errors["model.generator.neck.tag"] == "required field is missing"
        assert "did you mean 'gain'?" in errors["model.generator.neck.gian"]
        assert "greater than 0" in _errors(_spec_with_neck({"name": "test_gain", "tag": "t", "gain": 0}))[
            "model.generator.neck.gain"
        ]
        # ...and built into a trio
        trio = gancr.build(_spec_with_neck({"name": "test_gain", "gain": 2.0, "mode": "add", "tag": "t"}))
        assert isinstance(trio.generator.neck, Gain)
        assert (trio.generator.neck.gain, trio.generator.neck.mode) == (2.0, "add")
    # gone afterwards: listing, registry, schema, specs
    assert "test_gain" not in gancr.list_components("neck")
    assert "test-plugin" not in get_registry().plugins
    assert "Neck_test_gain" not in gancr.Spec.model_json_schema()["$defs"]
    errors = _errors(_spec_with_neck({"name": "test_gain", "tag": "t"}))
    assert errors["model.generator.neck"].startswith("unknown neck 'test_gain'")


def test_registered_plugin_is_removed_even_when_the_block_raises():
    with pytest.raises(ZeroDivisionError):
        with gancr.registered_plugin(GainPlugin(), "raising-block"):
            assert "test_gain" in gancr.list_components("neck")
            1 / 0  # noqa: B018
    assert "test_gain" not in gancr.list_components("neck")
    assert plugins.get_plugin_manager().get_plugin("raising-block") is None


def test_register_and_unregister_plugin_by_name():
    name = gancr.register_plugin(GainPlugin(), "manual")
    try:
        assert get_registry().get("neck", "test_gain").plugin == "manual"
        with pytest.raises(PluginError, match="a gancr plugin named 'manual' is already registered"):
            gancr.register_plugin(GainPlugin(), "manual")
    finally:
        gancr.unregister_plugin(name)
    with pytest.raises(UnknownComponentError):
        get_registry().get("neck", "test_gain")


def test_a_duplicate_name_is_an_error_naming_both_plugins():
    with gancr.registered_plugin(GainPlugin(), "first-plugin"):
        with pytest.raises(DuplicateComponentError) as exc:
            with gancr.registered_plugin(GainPlugin(), "second-plugin"):
                pass  # pragma: no cover
        message = str(exc.value)
        assert "neck 'test_gain' is registered twice" in message
        assert "'first-plugin'" in message and "'second-plugin'" in message
        # the first one still works, the second one is not left registered
        assert get_registry().get("neck", "test_gain").plugin == "first-plugin"
        assert "second-plugin" not in get_registry().plugins
        assert plugins.get_plugin_manager().get_plugin("second-plugin") is None

    class Shadow:
        @gancr.hookimpl
        def gancr_register_components(self, registry):
            registry.register("encoder", "vgg19", Gain)

    with pytest.raises(DuplicateComponentError, match="by plugin 'builtin' and by plugin 'shadow'"):
        with gancr.registered_plugin(Shadow(), "shadow"):
            pass  # pragma: no cover
    assert get_registry().get("encoder", "vgg19").plugin == "builtin"


def test_a_misspelt_hook_is_an_error_not_silence():
    class Misspelt:
        @gancr.hookimpl
        def gancr_register_component(self, registry):  # missing the final 's'
            registry.register("neck", "never", Gain)  # pragma: no cover

    with pytest.raises(PluginError) as exc:
        with gancr.registered_plugin(Misspelt(), "misspelt"):
            pass  # pragma: no cover
    message = str(exc.value)
    assert "'misspelt'" in message and "unknown hook 'gancr_register_component'" in message
    assert "did you mean 'gancr_register_components'?" in message
    assert "GANCR_STRICT_PLUGINS" not in message  # raised because it came from code
    assert plugins.get_plugin_manager().get_plugin("misspelt") is None
    assert "misspelt" not in plugins.plugin_failures()  # raised, not left out with a warning
    # an optional hook of another project's naming is allowed (pluggy's optionalhook)

    class Optional:
        @gancr.hookimpl(optionalhook=True)
        def gancr_some_future_hook(self):
            pass  # pragma: no cover

    with gancr.registered_plugin(Optional(), "optional"):
        assert "optional" in get_registry().plugins


def test_a_plugin_raising_in_its_hook_from_code_raises():
    class Raising:
        @gancr.hookimpl
        def gancr_register_components(self, registry):
            registry.register("neck", "half_done", Gain)
            raise RuntimeError("cannot register today")

    with pytest.raises(RuntimeError, match="cannot register today"):
        with gancr.registered_plugin(Raising(), "raising"):
            pass  # pragma: no cover
    assert "half_done" not in gancr.list_components("neck")
    assert plugins.get_plugin_manager().get_plugin("raising") is None


def test_plugin_api_outside_the_supported_range_loads_with_a_warning():
    class Future:
        GANCR_PLUGIN_API = ">=2,<3"

        @gancr.hookimpl
        def gancr_register_components(self, registry):
            registry.register("neck", "future_neck", Gain, params=GainParams)

    with pytest.warns(PluginWarning) as record:
        with gancr.registered_plugin(Future(), "future"):
            assert "future_neck" in gancr.list_components("neck")
            assert get_registry().plugins["future"].api == ">=2,<3"
    messages = [str(w.message) for w in record if issubclass(w.category, PluginWarning)]
    assert len(messages) == 1
    assert "'future' may not work" in messages[0]
    assert ">=2,<3" in messages[0] and plugins.PLUGIN_API_VERSION in messages[0]

    class Current:
        GANCR_PLUGIN_API = ">=1,<2"

        @gancr.hookimpl
        def gancr_register_components(self, registry):
            registry.register("neck", "current_neck", Gain, params=GainParams)

    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        with gancr.registered_plugin(Current(), "current"):
            assert "current_neck" in gancr.list_components("neck")


def test_hookspecs_module_holds_only_prefixed_specs_with_docs():
    specs = [n for n, f in vars(hookspecs).items() if inspect.isfunction(f)]
    assert "gancr_register_components" in specs
    for name in specs:
        assert name.startswith("gancr_"), name
        assert inspect.getdoc(getattr(hookspecs, name)), name
    assert gancr.hookimpl is hookspecs.hookimpl
    assert list(inspect.signature(hookspecs.gancr_register_components).parameters) == ["registry"]


# ----------------------------------------------------------------------------------------
# plugins installed as packages (entry points of group "gancr")
# ----------------------------------------------------------------------------------------

GOOD_PLUGIN = '''
import torch
import gancr
from gancr.registry import ComponentParams


class EchoParams(ComponentParams):
    width: int = 2


class EchoNeck(torch.nn.Identity):
    """An installed plugin's neck."""

    def __init__(self, channels, width=2):
        super().__init__()
        self.in_channels = self.out_channels = channels


@gancr.hookimpl
def gancr_register_components(registry):
    registry.register("neck", "echo", EchoNeck, params=EchoParams)
'''

IMPORT_ERROR_PLUGIN = '''
import gancr_test_missing_dependency  # noqa: F401
'''

RAISING_PLUGIN = '''
import torch
import gancr


@gancr.hookimpl
def gancr_register_components(registry):
    registry.register("neck", "half_registered", lambda channels: torch.nn.Identity())
    raise RuntimeError("kaboom while registering")
'''

MISSPELT_PLUGIN = '''
import gancr


@gancr.hookimpl
def gancr_register_compnents(registry):
    registry.register("neck", "never_registered", None)
'''

BROKEN = {
    "broken_import": (IMPORT_ERROR_PLUGIN, "failed to import", "ModuleNotFoundError: No module named 'gancr_test_missing_dependency'"),
    "broken_hook": (RAISING_PLUGIN, "raised in gancr_register_components", "RuntimeError: kaboom while registering"),
    "broken_spelling": (MISSPELT_PLUGIN, "has invalid hook implementations", "unknown hook 'gancr_register_compnents' (did you mean 'gancr_register_components'?)"),
}


def _plugin_warnings(fn):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in record if issubclass(w.category, PluginWarning)]


def test_an_installed_plugin_is_discovered_with_its_distribution(entry_point_plugins, capsys):
    entry_point_plugins.add("echo_plugin", GOOD_PLUGIN, dist="gancr-echo", version="1.2.3")
    entry_point_plugins.activate()
    registry, warned = _plugin_warnings(get_registry)
    assert warned == []
    entry = registry.get("neck", "echo")
    assert (entry.plugin, entry.distribution, entry.version) == ("echo_plugin", "gancr-echo", "1.2.3")
    info = registry.plugins["echo_plugin"]
    assert (info.distribution, info.version) == ("gancr-echo", "1.2.3")
    assert list(registry.plugins)[0] == "builtin"  # built-ins first, then entry points
    assert gancr.load_spec(_spec_with_neck({"name": "echo", "width": 3})).model.generator.neck.width == 3
    assert "Neck_echo" in gancr.Spec.model_json_schema()["$defs"]
    # the command line shows it with its distribution
    assert gancr.cli.main(["components", "neck"]) == 0
    out = capsys.readouterr().out
    assert "echo_plugin (gancr-echo 1.2.3)" in out and "An installed plugin's neck." in out


def test_broken_installed_plugins_warn_once_each_and_the_rest_works(entry_point_plugins):
    installed = set(get_registry().plugins)  # builtin, and any plugin installed for real
    entry_point_plugins.add("echo_plugin", GOOD_PLUGIN)
    for name, (source, _, _) in BROKEN.items():
        entry_point_plugins.add(name, source)
    entry_point_plugins.activate()
    registry, warned = _plugin_warnings(get_registry)
    assert len(warned) == len(BROKEN), warned
    for name, (_, what, detail) in BROKEN.items():
        (message,) = [m for m in warned if f"'{name}'" in m]
        assert what in message and detail in message and "left out" in message
    # everything else keeps working: built-ins, the good plugin, specs and builds
    assert {"echo", "identity", "resblocks"} <= set(registry.list("neck"))
    assert not {"half_registered", "never_registered"} & set(registry.list("neck"))
    assert set(registry.plugins) == installed | {"echo_plugin"}
    assert set(plugins.plugin_failures()) == set(BROKEN)
    assert gancr.build(_spec_with_neck({"name": "echo"})).generator.neck.out_channels == 8
    # one warning per plugin: rebuilding the registry does not repeat them
    plugins.invalidate()
    _, again = _plugin_warnings(get_registry)
    assert again == []
    # the unknown-name message lists the plugins that did load
    with pytest.raises(UnknownComponentError) as exc:
        get_registry().get("neck", "half_registered")
    loaded = str(exc.value).partition("Plugins loaded: ")[2].rstrip(".").split(", ")
    assert set(loaded) == installed | {"echo_plugin"} and loaded[0] == "builtin"


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_strict_plugins_turn_a_broken_plugin_into_an_error(entry_point_plugins, monkeypatch, name):
    source, what, detail = BROKEN[name]
    entry_point_plugins.add(name, source)
    monkeypatch.setenv("GANCR_STRICT_PLUGINS", "1")
    entry_point_plugins.activate()
    with pytest.raises(PluginError) as exc:
        get_registry()
    message = str(exc.value)
    assert f"'{name}'" in message and what in message and detail in message
    assert "GANCR_STRICT_PLUGINS is set" in message


def test_disabled_plugins_are_not_loaded(entry_point_plugins, monkeypatch):
    installed = set(get_registry().plugins)
    entry_point_plugins.add("echo_plugin", GOOD_PLUGIN)
    entry_point_plugins.add("broken_import", IMPORT_ERROR_PLUGIN)
    monkeypatch.setenv("GANCR_DISABLE_PLUGINS", " broken_import , echo_plugin ")
    monkeypatch.setenv("GANCR_STRICT_PLUGINS", "1")  # the broken one would raise if loaded
    entry_point_plugins.activate()
    registry, warned = _plugin_warnings(get_registry)
    assert warned == []
    assert "echo" not in registry.list("neck")
    assert set(registry.plugins) == installed
    # blocking only one of them
    monkeypatch.setenv("GANCR_DISABLE_PLUGINS", "broken_import")
    plugins.reset()
    assert "echo" in get_registry().list("neck")


def test_disabling_the_builtin_plugin_leaves_no_components(monkeypatch):
    monkeypatch.setenv("GANCR_DISABLE_PLUGINS", "builtin")
    plugins.reset()
    # only the components of installed plugin packages (plugins/*) are left
    assert "builtin" not in get_registry().plugins
    assert all(e.plugin != "builtin" for e in get_registry().entries())
    assert not {"conv", "resblocks", "patchgan", "l1", "lsgan", "fixed"} & set(gancr.list_components())
    with pytest.raises(SpecError) as exc:
        gancr.default_spec()
    assert "model.generator.encoder: no encoder is registered" in str(exc.value)


def test_an_installed_plugin_outside_the_api_range_loads_with_a_warning(entry_point_plugins):
    entry_point_plugins.add("future_plugin", 'GANCR_PLUGIN_API = ">=2"\n' + GOOD_PLUGIN)
    entry_point_plugins.add("odd_plugin", 'GANCR_PLUGIN_API = "one point oh"\n')
    entry_point_plugins.activate()
    registry, warned = _plugin_warnings(get_registry)
    assert "echo" in registry.list("neck")
    assert registry.plugins["future_plugin"].api == ">=2"
    (future,) = [m for m in warned if "'future_plugin'" in m]
    assert "may not work" in future and ">=2" in future
    (odd,) = [m for m in warned if "'odd_plugin'" in m]
    assert "'one point oh' is not a version specifier" in odd
    assert len(warned) == 2


def test_an_installed_plugin_taking_a_builtin_name_is_left_out_naming_both(entry_point_plugins):
    entry_point_plugins.add(
        "shadow_plugin",
        "import gancr, torch\n"
        "@gancr.hookimpl\n"
        "def gancr_register_components(registry):\n"
        "    registry.register('neck', 'identity', lambda channels: torch.nn.Identity())\n",
    )
    entry_point_plugins.activate()
    registry, warned = _plugin_warnings(get_registry)
    (message,) = warned
    assert "'shadow_plugin'" in message and "DuplicateComponentError" in message
    assert "by plugin 'builtin' and by plugin 'shadow_plugin'" in message
    assert registry.get("neck", "identity").plugin == "builtin"


# ----------------------------------------------------------------------------------------
# the tests' own isolation (conftest.py): these two run in this order
# ----------------------------------------------------------------------------------------


def test_isolation_1_a_test_that_changes_plugin_state():
    import os

    gancr.registry.register("neck", "leaky_neck", lambda channels: torch.nn.Identity())
    gancr.register_plugin(GainPlugin(), "leaky-plugin")  # never unregistered
    os.environ["GANCR_STRICT_PLUGINS"] = "1"  # set without monkeypatch
    assert {"leaky_neck", "test_gain"} <= set(gancr.list_components("neck"))


def test_isolation_2_the_next_test_starts_clean():
    import os

    assert os.environ.get("GANCR_STRICT_PLUGINS") != "1"
    assert not {"leaky_neck", "test_gain"} & set(gancr.list_components("neck"))
    assert "leaky-plugin" not in get_registry().plugins
    assert get_registry().get("neck", "resblocks").plugin == "builtin"
