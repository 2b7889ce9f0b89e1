"""The gancr plugin ``diffaug``: registers the discriminator ``diffaug``.

gancr loads this module through the entry point ``diffaug`` of group ``gancr`` (pyproject.toml).
"""

from __future__ import annotations

import gancr

from gancr_diffaug.diffaug import DiffAugDiscriminator, DiffAugParams

#: The gancr plugin API versions this plugin supports (a PEP 440 specifier); gancr warns,
#: naming this plugin, when it provides a version outside the range.
GANCR_PLUGIN_API = ">=1,<2"


@gancr.hookimpl
def gancr_register_components(registry: gancr.Registry) -> None:
    registry.register("discriminator", "diffaug", DiffAugDiscriminator, params=DiffAugParams)
