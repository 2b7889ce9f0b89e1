"""``gancr new-plugin NAME``: write a working plugin package to start from.

The package (``gancr-NAME/``) has a ``pyproject.toml`` whose ``[project.entry-points.gancr]``
names its hooks module, the hooks module (which states the plugin API range it supports),
one example component — a content loss ``NAME`` with its parameter model — a test that
runs gancr's contract checks on every component of the plugin (:mod:`gancr.testing`), and a
README. ``pip install -e gancr-NAME`` makes the component appear in ``gancr components``.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from gancr.errors import GancrError

__all__ = ["PluginNames", "new_plugin"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


class PluginNames:
    """The names of one plugin: distribution ``gancr-blur``, package ``gancr_blur``,
    entry point (plugin name) ``blur``, example component ``blur``, classes ``Blur...``."""

    def __init__(self, name: str):
        short = name.strip().lower()
        for prefix in ("gancr-", "gancr_"):
            short = short.removeprefix(prefix)
        if not _NAME_RE.match(short):
            raise GancrError(
                f"invalid plugin name {name!r}: use lower-case letters and digits, words joined by "
                "'-' or '_', starting with a letter (e.g. 'blur' or 'soft-edges')"
            )
        ident = short.replace("-", "_")
        self.entry_point = short.replace("_", "-")
        self.distribution = f"gancr-{self.entry_point}"
        self.package = f"gancr_{ident}"
        self.component = ident
        self.classname = "".join(part.capitalize() for part in ident.split("_"))


def _api_range() -> str:
    from gancr.plugins import PLUGIN_API_VERSION

    major = int(PLUGIN_API_VERSION.split(".")[0])
    return f">={major},<{major + 1}"


def _gancr_requirement() -> str:
    from gancr import __version__

    return ".".join(__version__.split(".")[:2])


PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "${distribution}"
version = "0.1.0"
description = "A gancr plugin: the content loss '${component}'."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["gancr>=${gancr_version}"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# gancr finds the plugin through this entry point: its name is the plugin's name (shown by
# `gancr components`, blocked by GANCR_DISABLE_PLUGINS=${entry_point}), its value the hooks module.
[project.entry-points.gancr]
${entry_point} = "${package}.hooks"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
''')

INIT = Template('''\
"""${distribution}: a gancr plugin. Its components are registered in ``${package}.hooks``."""

__version__ = "0.1.0"
''')

HOOKS = Template('''\
"""The gancr plugin '${entry_point}': registers its components with gancr.

gancr imports this module through the entry point in pyproject.toml and calls every hook
implementation in it (see "Writing a plugin" in gancr's docs for all hooks).
"""

from __future__ import annotations

import gancr

from ${package}.components import ${classname}Loss, ${classname}Params

#: The gancr plugin API versions this plugin supports (a PEP 440 specifier). gancr loads a
#: plugin outside its range too, with a warning naming it.
GANCR_PLUGIN_API = "${api_range}"


@gancr.hookimpl
def gancr_register_components(registry: gancr.Registry) -> None:
    registry.register("content_loss", "${component}", ${classname}Loss, params=${classname}Params)
''')

COMPONENTS = Template('''\
"""The components of ${distribution}."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from gancr import ComponentParams
from gancr.components.base import ContentLoss, LossContext


class ${classname}Params(ComponentParams):
    """The parameters of content loss '${component}': validated in specs, shown by `gancr describe`."""

    scale: int = Field(4, ge=1, description="average-pooling factor: details finer than this may change")
    distance: Literal["l1", "mse"] = Field("l1", description="how the low-pass images are compared")


class ${classname}Loss(ContentLoss):
    """Low-pass content: the distance between x and y average-pooled by ``scale``.

    Keeps the input's layout and large shapes, and leaves textures finer than ``scale``
    pixels to the style.
    """

    def __init__(self, scale: int = 4, distance: str = "l1"):
        super().__init__()
        self.scale, self.distance = scale, distance

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        if self.scale > 1:
            x = F.avg_pool2d(x, self.scale, ceil_mode=True)
            y = F.avg_pool2d(y, self.scale, ceil_mode=True)
        return F.l1_loss(y, x) if self.distance == "l1" else F.mse_loss(y, x)
''')

TEST = Template('''\
"""${distribution}: gancr's contract checks on every component of the plugin, and its own tests."""

import pytest
import torch

from gancr import build_component
from gancr.testing import check_component, component_params


@pytest.mark.parametrize("kind,name", component_params(plugin="${entry_point}"))
def test_every_component_keeps_the_gancr_contract(kind, name):
    check_component(kind, name)


def test_textures_finer_than_the_scale_are_free():
    loss = build_component("content_loss", {"name": "${component}", "scale": 4})
    x = torch.rand(1, 3, 32, 32)
    checker = (torch.arange(32).view(-1, 1) + torch.arange(32)) % 2 * 2 - 1  # +-1, averages to 0
    assert float(loss(x, x + 0.1 * checker)) < 1e-6
    assert float(loss(x, x.flip(-1))) > 0.01  # moving the layout is not
''')

README = Template('''\
# ${distribution}

A [gancr](https://pypi.org/project/gancr/) plugin. It registers the content loss
`${component}` (plugin `${entry_point}`).

## Install and check

```bash
pip install -e .
gancr components content_loss     # lists ${component}, plugin ${entry_point} (${distribution} 0.1.0)
gancr describe content_loss ${component}
pytest                            # gancr's contract checks and this plugin's own tests
```

## Use it in a spec

```yaml
requires: ["${distribution}>=0.1"]
losses:
  content:
    - {name: ${component}, weight: 1.0, scale: 4}
```

## Where things are

- `pyproject.toml`: the entry point `${entry_point} = "${package}.hooks"` of group `gancr`.
- `src/${package}/hooks.py`: `GANCR_PLUGIN_API`, the plugin API range this plugin supports,
  and the hook that registers the components.
- `src/${package}/components.py`: the example component and its parameter model; rename it,
  change it, add more (each with one `registry.register` line in `hooks.py`).
- `tests/`: `gancr.testing.component_params(plugin="${entry_point}")` runs gancr's contract
  checks on every component this plugin registers.
''')

GITIGNORE = Template("""\
build/
dist/
*.egg-info/
__pycache__/
""")

FILES: dict[str, Template] = {
    ".gitignore": GITIGNORE,
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "src/{package}/__init__.py": INIT,
    "src/{package}/hooks.py": HOOKS,
    "src/{package}/components.py": COMPONENTS,
    "tests/test_{package}.py": TEST,
}


def new_plugin(name: str, out: str | Path = ".", *, force: bool = False) -> Path:
    """Write the plugin package ``gancr-NAME`` under ``out``; return its directory.

    Raises:
        GancrError: an invalid name, a plugin or component name already taken, or a
            non-empty target directory (unless ``force``).
    """
    names = PluginNames(name)
    from gancr.plugins import get_registry

    registry = get_registry()
    if ("content_loss", names.component) in registry:
        taken = registry.get("content_loss", names.component)
        raise GancrError(
            f"a content loss named {names.component!r} is already registered by plugin "
            f"{taken.plugin!r}: choose another plugin name"
        )
    if names.entry_point in registry.plugins:
        raise GancrError(
            f"a gancr plugin named {names.entry_point!r} is already loaded "
            f"({registry.plugins[names.entry_point]}): choose another plugin name"
        )
    target = Path(out) / names.distribution
    if target.exists() and any(target.iterdir()) and not force:
        raise GancrError(f"{target} exists and is not empty; choose another --out, or pass --force")
    values = {
        **vars(names),
        "api_range": _api_range(),
        "gancr_version": _gancr_requirement(),
    }
    for relative, template in FILES.items():
        path = target / relative.format(package=names.package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
    return target
