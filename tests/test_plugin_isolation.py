"""Isolation, with real broken plugin packages built and installed by pip.

Three tiny distributions are built and installed once per session (``pip install --target``)
into a folder that a ``gancr`` subprocess gets on ``PYTHONPATH``: one whose module fails to
import, one whose hook raises, and a good one. ``gancr components`` then warns naming each
broken plugin and lists everything else (built-ins, the good plugin, the installed
``plugins/*`` packages); ``GANCR_STRICT_PLUGINS=1`` makes a broken plugin fatal (exit 2 and
a message naming it); ``GANCR_DISABLE_PLUGINS`` blocks plugins by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pluginkit import pip_install_target, with_pythonpath, write_package
from trainkit import run_gancr

pytestmark = pytest.mark.slow

PACKAGES = {
    "gancr-test-broken-import": (
        "broken_import",
        "import gancr_test_no_such_dependency  # noqa: F401\n",
    ),
    "gancr-test-broken-hook": (
        "broken_hook",
        """
        import torch
        import gancr

        GANCR_PLUGIN_API = ">=1,<2"


        @gancr.hookimpl
        def gancr_register_components(registry):
            registry.register("neck", "half_registered", lambda channels: torch.nn.Identity())
            raise RuntimeError("kaboom while registering")
        """,
    ),
    "gancr-test-echo": (
        "echo_plugin",
        """
        import torch
        import gancr


        class Echo(torch.nn.Identity):
            \"\"\"An installed plugin's neck that passes its input on.\"\"\"

            def __init__(self, channels):
                super().__init__()
                self.in_channels = self.out_channels = channels


        @gancr.hookimpl
        def gancr_register_components(registry):
            registry.register("neck", "echo", Echo)
        """,
    ),
}


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the three test distributions installed by pip (once per session)."""
    root = tmp_path_factory.mktemp("plugin-packages")
    folders = [write_package(root / "src", dist, ep, src) for dist, (ep, src) in PACKAGES.items()]
    site = root / "site"
    pip_install_target(site, *folders)
    assert {p.name for p in site.glob("*.dist-info")} == {
        f"{d.replace('-', '_')}-0.1.0.dist-info" for d in PACKAGES
    }
    return site


def test_broken_packages_warn_naming_them_and_the_rest_works(broken_site):
    result = run_gancr("components", env=with_pythonpath(broken_site))
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "gancr: warning: gancr plugin 'broken_import' (entry point 'gancr_test_broken_import') failed to import" in err
    assert "ModuleNotFoundError: No module named 'gancr_test_no_such_dependency'" in err
    assert "gancr: warning: gancr plugin 'broken_hook' raised in gancr_register_components" in err
    assert "RuntimeError: kaboom while registering" in err
    assert "2 plugin(s) left out:" in err
    rows = {tuple(line.split()[:3]) for line in result.stdout.splitlines()[1:]}
    assert ("neck", "echo", "echo_plugin") in rows  # the good installed plugin
    assert {("neck", "resblocks", "builtin"), ("content_loss", "patchnce", "cut"),
            ("discriminator", "diffaug", "diffaug")} <= rows
    assert not any(name == "half_registered" for _, name, _ in rows)


def test_strict_plugins_make_a_broken_package_fatal(broken_site):
    result = run_gancr("components", env=with_pythonpath(broken_site, GANCR_STRICT_PLUGINS="1"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("gancr components: error: gancr plugin 'broken_import'")
    assert "failed to import" in result.stderr and "(GANCR_STRICT_PLUGINS is set)" in result.stderr
    assert "Traceback" not in result.stderr
    # with the import failure blocked, the failing hook is the fatal one
    env = with_pythonpath(broken_site, GANCR_STRICT_PLUGINS="1", GANCR_DISABLE_PLUGINS="broken_import")
    result = run_gancr("components", env=env)
    assert result.returncode == 2
    assert "gancr plugin 'broken_hook' raised in gancr_register_components" in result.stderr
    assert "RuntimeError: kaboom while registering (GANCR_STRICT_PLUGINS is set)" in result.stderr


def test_disabled_packages_are_not_loaded(broken_site):
    env = with_pythonpath(broken_site, GANCR_STRICT_PLUGINS="1", GANCR_DISABLE_PLUGINS="broken_import, broken_hook")
    result = run_gancr("components", "neck", env=env)
    assert result.returncode == 0, result.stderr
    assert "broken" not in result.stderr and "left out" not in result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines()[1:]]
    assert "echo" in names and "resblocks" in names
