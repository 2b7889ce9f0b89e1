"""The gancr plugin ``cut``: registers the content loss ``patchnce``.

gancr loads this module through the entry point ``cut`` of group ``gancr`` (pyproject.toml).
"""

from __future__ import annotations

import gancr

from gancr_cut.patchnce import PatchNCELoss, PatchNCEParams

#: The gancr plugin API versions this plugin supports (a PEP 440 specifier); gancr warns,
#: naming this plugin, when it provides a version outside the range.
GANCR_PLUGIN_API = ">=1,<2"


@gancr.hookimpl
def gancr_register_components(registry: gancr.Registry) -> None:
    registry.register("content_loss", "patchnce", PatchNCELoss, params=PatchNCEParams)
