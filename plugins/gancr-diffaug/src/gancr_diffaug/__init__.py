"""gancr-diffaug: Differentiable Augmentation (Zhao et al. 2020) for any discriminator, as a gancr plugin.

Use it in a spec as
``discriminator: {name: diffaug, policy: [color, translation, cutout], inner: {name: patchgan}}``.
"""

from __future__ import annotations

from gancr_diffaug.diffaug import (
    POLICIES,
    DiffAugDiscriminator,
    DiffAugParams,
    diff_augment,
    rand_color,
    rand_cutout,
    rand_translation,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "POLICIES",
    "DiffAugDiscriminator",
    "DiffAugParams",
    "diff_augment",
    "rand_color",
    "rand_cutout",
    "rand_translation",
]
