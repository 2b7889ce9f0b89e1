"""Helpers for the tests of plugin packages: build tiny distributions and install them with pip
into a folder (not into the test environment) that a subprocess gets on ``PYTHONPATH``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from trainkit import subprocess_env


def write_package(root: Path, distribution: str, entry_point: str, source: str) -> Path:
    """A one-module distribution whose module is the plugin of entry point ``entry_point``."""
    module = distribution.replace("-", "_")
    folder = root / distribution
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{distribution}"
            version = "0.1.0"

            [project.entry-points.gancr]
            {entry_point} = "{module}"

            [tool.setuptools]
            py-modules = ["{module}"]
        """),
        encoding="utf-8",
    )
    return folder


def pip_install_target(target: Path, *packages: Path) -> None:
    """``pip install`` local packages into ``target`` (no index, no dependencies, no isolation)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), *map(str, packages)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def with_pythonpath(site: Path, **extra: str) -> dict[str, str]:
    """A subprocess environment (one thread, ``extra`` variables) that imports from ``site`` first."""
    env = subprocess_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return env
