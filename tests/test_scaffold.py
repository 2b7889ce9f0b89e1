"""``gancr new-plugin``: the names it derives, the files it writes, what it refuses.

Installing a scaffolded package for real is tests/test_plugin_guide.py's job (slow); here the
package is checked in process: its metadata, that its hooks module loads as a plugin, and
that its component passes the contract checks.
"""

from __future__ import annotations

import importlib
import sys
import tomllib

import pytest
from packaging.specifiers import SpecifierSet

import gancr
from gancr.cli import main
from gancr.plugins import PLUGIN_API_VERSION
from gancr.cli.scaffold import PluginNames, new_plugin
from gancr.testing import check_component


@pytest.mark.parametrize("given", ["soft-edges", "gancr-soft-edges", "gancr_soft_edges", "Soft-Edges"])
def test_names(given):
    names = PluginNames(given)
    assert (names.distribution, names.package, names.entry_point, names.component, names.classname) == (
        "gancr-soft-edges", "gancr_soft_edges", "soft-edges", "soft_edges", "SoftEdges",
    )


@pytest.mark.parametrize("bad", ["", "1blur", "blur!", "soft edges", "gancr-", "a--b"])
def test_invalid_names_are_refused(bad, tmp_path):
    with pytest.raises(gancr.GancrError, match="invalid plugin name"):
        new_plugin(bad, tmp_path)


def test_the_package(tmp_path, capsys, monkeypatch):
    assert main(["new-plugin", "soft-edges", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "gancr-soft-edges"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        ".gitignore", "README.md", "pyproject.toml", "src/gancr_soft_edges/__init__.py",
        "src/gancr_soft_edges/components.py", "src/gancr_soft_edges/hooks.py", "tests/test_gancr_soft_edges.py",
    ]
    assert f"pip install -e {root}" in out and "README.md" in out
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "gancr-soft-edges"
    assert project["project"]["entry-points"]["gancr"] == {"soft-edges": "gancr_soft_edges.hooks"}
    assert project["project"]["dependencies"] == ["gancr>=0.2"]  # the minor release it was written for
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    # the hooks module is a plugin that states a supported API range including this gancr's
    monkeypatch.syspath_prepend(str(root / "src"))
    try:
        hooks = importlib.import_module("gancr_soft_edges.hooks")
        assert PLUGIN_API_VERSION in SpecifierSet(hooks.GANCR_PLUGIN_API)
        assert str(int(PLUGIN_API_VERSION.split(".")[0]) + 1) + ".0" not in SpecifierSet(hooks.GANCR_PLUGIN_API)
        with gancr.registered_plugin(hooks, "soft-edges"):
            entry = gancr.get_registry().get("content_loss", "soft_edges")
            assert entry.summary.startswith("Low-pass content")
            check_component("content_loss", "soft_edges")
            check_component("content_loss", {"name": "soft_edges", "scale": 1, "distance": "mse"})
    finally:
        for name in [m for m in sys.modules if m.startswith("gancr_soft_edges")]:
            del sys.modules[name]


def test_it_refuses_to_overwrite_or_to_take_a_registered_name(tmp_path, capsys):
    new_plugin("blur", tmp_path)
    assert main(["new-plugin", "blur", "--out", str(tmp_path)]) == 2
    assert "gancr-blur exists and is not empty; choose another --out, or pass --force" in capsys.readouterr().err
    (tmp_path / "gancr-blur" / "README.md").write_text("mine")
    assert main(["new-plugin", "blur", "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "gancr-blur" / "README.md").read_text() != "mine"
    with pytest.raises(gancr.GancrError, match="a content loss named 'ssim' is already registered by plugin 'builtin'"):
        new_plugin("ssim", tmp_path)
    with pytest.raises(gancr.GancrError, match=r"a gancr plugin named 'builtin' is already loaded \(builtin \(gancr "):
        new_plugin("builtin", tmp_path)
