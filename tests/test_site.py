"""The documentation site: ``mkdocs build --strict`` turns docs/ into a site with an API reference
generated from the docstrings; a broken link or a missing page fails the build; every page of
docs/ is in the site's navigation. CI installs the ``docs`` extra, so this runs there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

if not os.environ.get("CI"):  # in CI the extra is installed, and a missing one is a failure
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")


def _config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((REPO / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - a safe loader


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=config.parent)


def test_every_page_is_in_the_navigation():
    nav = [next(iter(item.values())) for item in _config()["nav"]]
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert sorted(nav) == pages, "add the page to nav in mkdocs.yml (and link it from docs/index.md)"


def test_the_site_builds_strictly_with_the_api_reference(tmp_path):
    result = _build(REPO / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("load_spec", "build_component", "Trainer", "evaluate", "FIDInception", "SpecError"):
        assert f'id="gancr.' in api and re.search(rf'id="gancr\.[\w.]*\b{name}"', api), name
    assert "Read and validate a spec from a YAML or JSON file" in api  # a docstring, rendered
    spec = (tmp_path / "site" / "spec" / "index.html").read_text(encoding="utf-8")
    assert 'href="#trainingstages-items"' in spec and 'id="trainingstages-items"' in spec


def _mini_site(tmp_path: Path, page: str, nav: list[str]) -> Path:
    """A one-page site with mkdocs.yml's strictness and validation settings."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(page, encoding="utf-8")
    config = _config()
    mini = {"site_name": "t", "strict": True, "validation": config["validation"], "nav": nav}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(mini), encoding="utf-8")
    return tmp_path / "mkdocs.yml"


@pytest.mark.parametrize("page,nav,error", [
    ("# t\n\n[gone](gone.md)\n", ["index.md"], "gone.md"),
    ("# t\n\n[anchor](#nowhere)\n", ["index.md"], "nowhere"),
    ("# t\n", ["index.md", "missing.md"], "missing.md"),
], ids=["broken link", "broken anchor", "missing page"])
def test_a_broken_link_or_a_missing_page_fails_the_build(tmp_path, page, nav, error):
    result = _build(_mini_site(tmp_path, page, nav), tmp_path / "site")
    assert result.returncode != 0 and error in result.stderr, result.stderr
