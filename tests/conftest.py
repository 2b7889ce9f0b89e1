"""Fixtures shared by gancr's tests.

* Plugin state never leaks between tests: an autouse fixture notes the plugin manager, the
  plugins registered from Python and the environment, and resets gancr's plugins after a
  test that changed any of them (only then: rebuilding the registry and rebinding the spec
  costs time).
* :func:`entry_point_plugins` installs fake plugin *packages* (a module plus a
  ``.dist-info`` with an entry point of group ``gancr``) from a temporary directory.
* :func:`small_trio` is a tiny built trio (for losses that need a content net).
* :func:`builtin_cache_dir` is a ``GANCR_CACHE_DIR`` holding the built-in images, made once for
  the session (here, not in a module: a session fixture imported into several modules would be
  made once per module).

Torch runs on one thread in the tests (``GANCR_TEST_THREADS`` changes it): the tensors are
tiny, and on a shared machine a second OpenMP thread that waits for a busy core makes a
small forward/backward pass up to fifty times slower.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import gancr
import gancr.testing
from gancr import plugins
from gancr.testing import SMALL_SPEC

torch.set_num_threads(int(os.environ.get("GANCR_TEST_THREADS", "1")))

# Nothing downloads in tests, and nothing a machine happens to have cached is used: torch hub's
# cache (pretrained torchvision weights, the metrics' networks) is an empty folder of our own.
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="gancr-test-torch-home-")

PLUGIN_ENV = ("GANCR_DISABLE_PLUGINS", "GANCR_STRICT_PLUGINS")

#: A small generator/content-net spec: builds in well under a second (gancr.testing's, which
#: the contract checks use too).
SMALL_MODEL = SMALL_SPEC["model"]


@pytest.fixture(autouse=True)
def _isolated_plugins() -> Iterator[None]:
    """Reset gancr's plugins after a test that changed them (or their environment)."""
    env = {k: os.environ.get(k) for k in PLUGIN_ENV}
    plugins.get_registry()  # so that the state below is the loaded one
    before = plugins.snapshot()
    yield
    changed = False
    for key, value in env.items():
        if os.environ.get(key) != value:  # set without monkeypatch: put it back
            changed = True
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    after = plugins.snapshot()
    if changed or after[0] is not before[0] or after[1:] != before[1:]:
        plugins.reset()


class EntryPointPlugins:
    """Fake installed plugin packages, discovered through ``importlib.metadata``.

    ``add()`` writes ``<root>/<module>/__init__.py`` and
    ``<root>/<dist>-<version>.dist-info/{METADATA,entry_points.txt}``; ``activate()`` makes
    gancr forget its plugins so that the next use loads them (warnings appear then).
    """

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = root
        self.monkeypatch = monkeypatch
        self.modules: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        monkeypatch.syspath_prepend(str(root))

    def add(
        self,
        name: str,
        source: str,
        *,
        dist: str | None = None,
        version: str = "1.0.0",
        module: str | None = None,
    ) -> None:
        """A package ``module`` (default: ``name``) whose entry point ``name`` is the module."""
        module = module or name
        dist = dist or f"gancr-test-{name.replace('_', '-')}"
        package = self.root / module
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(f"[gancr]\n{name} = {module}\n", encoding="utf-8")
        self.modules.append(module)

    def activate(self) -> None:
        importlib.invalidate_caches()
        for module in self.modules:
            sys.modules.pop(module, None)
        plugins.reset()

    def cleanup(self) -> None:
        for module in self.modules:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()
        plugins.reset()


@pytest.fixture
def entry_point_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EntryPointPlugins]:
    """Install fake entry-point plugin packages for one test (removed afterwards)."""
    eps = EntryPointPlugins(tmp_path / "site", monkeypatch)
    try:
        yield eps
    finally:
        eps.cleanup()


@pytest.fixture(scope="session")
def builtin_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GANCR_CACHE_DIR for the session: the built-in data is made once, in the test's tree."""
    root = tmp_path_factory.mktemp("gancr-cache")
    from gancr.data import resolve_source

    old = os.environ.get("GANCR_CACHE_DIR")
    os.environ["GANCR_CACHE_DIR"] = str(root)
    try:
        for source in ("builtin:photos", "builtin:cartoon", "builtin:holdout"):
            resolve_source(source)
    finally:
        if old is None:
            os.environ.pop("GANCR_CACHE_DIR", None)
        else:
            os.environ["GANCR_CACHE_DIR"] = old
    return root


@pytest.fixture(scope="session")
def small_trio() -> gancr.Trio:
    """A tiny trio (conv encoders, one residual block, a narrow PatchGAN), shared with the
    contract checks of :mod:`gancr.testing`."""
    return gancr.testing.small_trio()
