"""gancr-cut: the PatchNCE content loss of Contrastive Unpaired Translation, as a gancr plugin.

Use it in a spec as ``{name: patchnce, weight: 1.0, layers: [...], num_patches: 256}``.
"""

from __future__ import annotations

from gancr_cut.patchnce import INPUT_LAYER, PatchNCELoss, PatchNCEParams, patch_nce_loss, sample_patches

__version__ = "0.1.0"

__all__ = ["__version__", "INPUT_LAYER", "PatchNCELoss", "PatchNCEParams", "patch_nce_loss", "sample_patches"]
