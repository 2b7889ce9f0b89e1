r"""Content-retention and style metrics on plain tensors.

Every function here works on tensors the caller already has: images are float tensors of
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
and :func:`inception_features` gives the customary Inception-v3 pool features when the
torchvision weights are on disk (it never downloads; see :class:`WeightsUnavailable`).

:data:`METRIC_DOCS` explains each metric in one paragraph, for docs and evaluation tables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "METRIC_DOCS",
    "WeightsUnavailable",
    "edge_f1",
    "encoder_features",
    "feature_distance",
    "fid",
    "gram_distance",
    "inception_features",
    "kid",
    "lab_histogram_distance",
    "pooled",
    "psnr",
    "sobel_correlation",
    "ssim",
]

#: Values this far outside :math:`[0, 1]` are tolerated by the image checks (rounding).
_RANGE_TOLERANCE = 1e-3


class WeightsUnavailable(RuntimeError):
    """Pretrained weights a metric needs are not available on this machine.

    Raised instead of downloading: metrics never reach the network. The message names the
    file that was looked for and how to provide it.
    """


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _check_images(fn: str, images: Any) -> None:
    """Raise the uniform ``ValueError`` unless ``images`` is a float (B, 3, H, W) tensor in [0, 1]."""
    expected = f"{fn}: expected a float tensor of shape (B, 3, H, W) in [0, 1]"
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{expected}, got {type(images).__name__}")
    if (
        not images.is_floating_point()
        or images.ndim != 4
        or images.shape[1] != 3
        or images.shape[0] < 1
        or images.shape[2] < 1
        or images.shape[3] < 1
    ):
        raise ValueError(f"{expected}, got shape {tuple(images.shape)} dtype {images.dtype}")
    lo, hi = float(images.min()), float(images.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        if not bool(torch.isfinite(images).all()):
            raise ValueError(f"{expected}, got non-finite values (NaN or inf)")
        raise ValueError(f"{expected}, got values in [{lo:.4g}, {hi:.4g}]")


def _check_pair(fn: str, x: Any, y: Any) -> None:
    """Check both images of a paired metric, then that their shapes agree."""
    _check_images(fn, x)
    _check_images(fn, y)
    if x.shape != y.shape:
        raise ValueError(
            f"{fn}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def _check_reduction(fn: str, reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise ValueError(f"{fn}: reduction must be 'mean' or 'none', got {reduction!r}")


def _reduce(values: torch.Tensor, reduction: str) -> float | torch.Tensor:
    """``"mean"`` -> Python float of the mean; ``"none"`` -> the (B,) tensor itself."""
    if reduction == "none":
        return values
    return float(values.mean())


def _check_feature_list(fn: str, name: str, features: Any) -> list[torch.Tensor]:
    """A non-empty list/tuple of floating tensors with at least 2 dims (N, C, ...)."""
    if isinstance(features, torch.Tensor):
        features = [features]
    if not isinstance(features, (list, tuple)) or len(features) == 0:
        raise ValueError(
            f"{fn}: {name} must be a non-empty list of feature tensors of shape (N, C, H, W) "
            f"or (N, C), got {type(features).__name__}"
            + (" of length 0" if isinstance(features, (list, tuple)) else "")
        )
    for i, f in enumerate(features):
        if not isinstance(f, torch.Tensor) or not f.is_floating_point() or f.ndim < 2:
            got = (
                f"shape {tuple(f.shape)} dtype {f.dtype}"
                if isinstance(f, torch.Tensor)
                else type(f).__name__
            )
            raise ValueError(
                f"{fn}: {name}[{i}] must be a float tensor of shape (N, C, H, W) or (N, C), got {got}"
            )
        if f.shape[0] < 1:
            raise ValueError(f"{fn}: {name}[{i}] is empty, got shape {tuple(f.shape)}")
    return list(features)


def _check_vectors(fn: str, name: str, feats: Any, min_rows: int = 2) -> torch.Tensor:
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or not feats.is_floating_point():
        got = (
            f"shape {tuple(feats.shape)} dtype {feats.dtype}"
            if isinstance(feats, torch.Tensor)
            else type(feats).__name__
        )
        raise ValueError(f"{fn}: {name} must be a float tensor of shape (N, D), got {got}")
    if feats.shape[0] < min_rows:
        raise ValueError(
            f"{fn}: {name} needs at least {min_rows} feature vectors, got {feats.shape[0]} "
            f"(shape {tuple(feats.shape)})"
        )
    if not bool(torch.isfinite(feats).all()):
        raise ValueError(f"{fn}: {name} contains non-finite values (NaN or inf)")
    return feats


def _gray(images: torch.Tensor) -> torch.Tensor:
    from kornia.color import rgb_to_grayscale

    return rgb_to_grayscale(images)


# --------------------------------------------------------------------------------------
# content retention: x (input) vs y (output), image by image
# --------------------------------------------------------------------------------------


def ssim(
    x: torch.Tensor, y: torch.Tensor, window_size: int = 11, reduction: str = "mean"
) -> float | torch.Tensor:
    r"""Structural similarity between each input and its output.

    .. math::

        \text{SSIM}(x, y) = \frac{(2\mu_x\mu_y + c_1)(2\sigma_{xy} + c_2)}
        {(\mu_x^2 + \mu_y^2 + c_1)(\sigma_x^2 + \sigma_y^2 + c_2)},
        \quad c_1 = 0.01^2,\ c_2 = 0.03^2,

    with local moments under a Gaussian window (:math:`\sigma = 1.5`, ``window_size`` taps,
    reflect padding), computed by :func:`kornia.metrics.ssim` with ``max_val=1`` and
    ``eps=0`` (so identical images score exactly 1), averaged over channels and pixels of
    each image.

    Args:
        x: reference (input) images :math:`(B, 3, H, W)` in :math:`[0, 1]`.
        y: compared (output) images, same shape as ``x``.
        window_size: odd number of taps of the Gaussian window; ``H`` and ``W`` must exceed
            ``window_size // 2``.
        reduction: ``"mean"`` (Python float, mean over the batch) or ``"none"`` (tensor
            :math:`(B,)`).

    Returns:
        SSIM in :math:`[-1, 1]`, higher is better.

    Examples:
        >>> x = torch.linspace(0, 1, 32).expand(1, 3, 32, 32)
        >>> ssim(x, x)
        1.0
    """
    _check_pair("ssim", x, y)
    _check_reduction("ssim", reduction)
    if not isinstance(window_size, int) or window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"ssim: window_size must be a positive odd integer, got {window_size!r}")
    if min(x.shape[-2:]) <= window_size // 2:
        raise ValueError(
            f"ssim: images of size {tuple(x.shape[-2:])} are too small for window_size={window_size}; "
            f"H and W must exceed {window_size // 2}"
        )
    from kornia.metrics import ssim as _kornia_ssim

    ssim_map = _kornia_ssim(x, y, window_size, max_val=1.0, eps=0.0)
    return _reduce(ssim_map.flatten(1).mean(1), reduction)


def psnr(
    x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0, reduction: str = "mean"
) -> float | torch.Tensor:
    r"""Peak signal-to-noise ratio of each output against its input.

    .. math::

        \text{PSNR}(x, y) = 10 \log_{10} \frac{\text{max\_val}^2}{\text{MSE}(x, y)},

    with the MSE taken over the channels and pixels of one image. Identical images have zero
    MSE and a PSNR of ``float('inf')`` (``reduction="mean"`` is then ``inf`` too, being the
    mean of the per-image values, not the PSNR of the mean MSE).

    Args:
        x: reference images :math:`(B, 3, H, W)` in :math:`[0, 1]`.
        y: compared images, same shape as ``x``.
        max_val: the peak value of the signal (``1.0`` for images in :math:`[0, 1]`).
        reduction: ``"mean"`` (Python float) or ``"none"`` (tensor :math:`(B,)`).

    Returns:
        PSNR in decibels, in :math:`[0, \infty]` for images in range; higher is better.

    Examples:
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> round(psnr(x, x + 0.1), 4)  # MSE 0.01 -> 20 dB
        20.0
    """
    _check_pair("psnr", x, y)
    _check_reduction("psnr", reduction)
    if not isinstance(max_val, (int, float)) or not max_val > 0:
        raise ValueError(f"psnr: max_val must be a positive number, got {max_val!r}")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    values = 10.0 * torch.log10(float(max_val) ** 2 / mse)  # mse == 0 -> +inf
    return _reduce(values.to(torch.promote_types(x.dtype, y.dtype)), reduction)


def edge_f1(
    x: torch.Tensor,
    y: torch.Tensor,
    low: float = 0.1,
    high: float = 0.2,
    tolerance: int = 1,
    reduction: str = "mean",
) -> float | torch.Tensor:
    r"""F1 score of the output's Canny edges against the input's, with a spatial tolerance.

    Edges :math:`E_x, E_y` come from :func:`kornia.filters.canny` on the grayscale images
    (thresholds ``low`` / ``high`` on kornia's unnormalised gradient magnitude, where a
    blurred unit step reaches about 2.6). With :math:`D_t(E)` the edge map dilated by a
    :math:`(2t+1) \times (2t+1)` max-pool (every pixel within Chebyshev distance ``t``):

    .. math::

        P = \frac{|E_y \cap D_t(E_x)|}{|E_y|}, \quad
        R = \frac{|E_x \cap D_t(E_y)|}{|E_x|}, \quad
        F_1 = \frac{2PR}{P + R}.

    Edges are computed in float64, so an image's score does not depend on the rest of its
    batch. Empty maps: both empty gives 1 (nothing to keep, nothing invented); exactly one empty
    gives 0; :math:`P = R = 0` gives 0.

    Args:
        x: reference (input) images :math:`(B, 3, H, W)` in :math:`[0, 1]`.
        y: compared (output) images, same shape as ``x``.
        low: Canny's low hysteresis threshold.
        high: Canny's high hysteresis threshold, at least ``low``.
        tolerance: how many pixels apart two edge pixels may be and still match (``0`` for an
            exact match).
        reduction: ``"mean"`` (Python float) or ``"none"`` (tensor :math:`(B,)`).

    Returns:
        F1 in :math:`[0, 1]`, higher is better.

    Examples:
        >>> x = torch.zeros(1, 3, 32, 32)
        >>> x[..., 8:24, 8:24] = 1.0
        >>> edge_f1(x, x)
        1.0
    """
    _check_pair("edge_f1", x, y)
    _check_reduction("edge_f1", reduction)
    if not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"edge_f1: tolerance must be a non-negative integer, got {tolerance!r}")
    if not (0 < low <= high):
        raise ValueError(f"edge_f1: expected 0 < low <= high, got low={low!r} high={high!r}")
    from kornia.filters import canny

    with torch.no_grad():
        # float64: in float32 the convolution's rounding depends on the batch size, which flips
        # non-maximum-suppression ties (common on synthetic images) and makes an image's score
        # depend on the other images of its batch
        ex = canny(_gray(x.double()), low_threshold=low, high_threshold=high)[1] > 0.5
        ey = canny(_gray(y.double()), low_threshold=low, high_threshold=high)[1] > 0.5
        k = 2 * tolerance + 1

        def dilate(e: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(e.float(), k, stride=1, padding=tolerance) > 0.5

        nx = ex.flatten(1).sum(1).double()
        ny = ey.flatten(1).sum(1).double()
        matched_y = (ey & dilate(ex)).flatten(1).sum(1).double()
        matched_x = (ex & dilate(ey)).flatten(1).sum(1).double()
        precision = torch.where(ny > 0, matched_y / ny.clamp_min(1), torch.zeros_like(ny))
        recall = torch.where(nx > 0, matched_x / nx.clamp_min(1), torch.zeros_like(nx))
        denom = precision + recall
        f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(denom))
        f1 = torch.where((nx == 0) & (ny == 0), torch.ones_like(f1), f1)
    return _reduce(f1.to(x.dtype), reduction)


def sobel_correlation(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> float | torch.Tensor:
    r"""Pearson correlation of the Sobel gradient magnitudes of input and output.

    With :math:`g = |\nabla_{\text{Sobel}}\, \text{gray}(\cdot)|` from
    :func:`kornia.filters.sobel` (normalised kernel, replicate border), per image:

    .. math::

        \rho(x, y) = \frac{\sum_p (g_x(p) - \bar g_x)(g_y(p) - \bar g_y)}
        {\sqrt{\sum_p (g_x(p) - \bar g_x)^2}\sqrt{\sum_p (g_y(p) - \bar g_y)^2}}.

    A flat gradient map (zero variance, e.g. a constant image) has no correlation defined:
    both flat gives 1, one flat gives 0.

    Args:
        x: reference (input) images :math:`(B, 3, H, W)` in :math:`[0, 1]`.
        y: compared (output) images, same shape as ``x``.
        reduction: ``"mean"`` (Python float) or ``"none"`` (tensor :math:`(B,)`).

    Returns:
        Correlation in :math:`[-1, 1]`, higher is better.

    Examples:
        >>> x = torch.zeros(1, 3, 32, 32)
        >>> x[..., 8:24, 8:24] = 1.0
        >>> round(sobel_correlation(x, x), 6)
        1.0
    """
    _check_pair("sobel_correlation", x, y)
    _check_reduction("sobel_correlation", reduction)
    from kornia.filters import sobel

    gx = sobel(_gray(x)).flatten(1).double()
    gy = sobel(_gray(y)).flatten(1).double()
    gx = gx - gx.mean(1, keepdim=True)
    gy = gy - gy.mean(1, keepdim=True)
    vx = gx.pow(2).sum(1)
    vy = gy.pow(2).sum(1)
    flat = 1e-12 * gx.shape[1]
    flat_x, flat_y = vx <= flat, vy <= flat
    rho = (gx * gy).sum(1) / (vx.clamp_min(1e-300).sqrt() * vy.clamp_min(1e-300).sqrt())
    rho = rho.clamp(-1.0, 1.0)
    rho = torch.where(flat_x | flat_y, torch.zeros_like(rho), rho)
    rho = torch.where(flat_x & flat_y, torch.ones_like(rho), rho)
    return _reduce(rho.to(x.dtype), reduction)


def _unit_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each feature vector (along dim 1) by its L2 norm; a zero vector stays zero."""
    return f / f.norm(dim=1, keepdim=True).clamp_min(eps)


def feature_distance(
    features_x: Sequence[torch.Tensor],
    features_y: Sequence[torch.Tensor],
    reduction: str = "mean",
) -> float | torch.Tensor:
    r"""Distance between two images' features, layer by layer, on channel-normalised features.

    For each layer :math:`l` with features :math:`f^l \in \mathbb{R}^{N \times C \times H
    \times W}`, every position's channel vector is scaled to unit length (as LPIPS does,
    without learned weights): :math:`\hat f^l_{n,:,h,w} = f^l_{n,:,h,w} / \|f^l_{n,:,h,w}\|_2`
    (a zero vector stays zero). The distance is the squared difference summed over channels,
    averaged over positions, then averaged over layers:

    .. math::

        d_n = \frac{1}{L} \sum_l \frac{1}{H_l W_l} \sum_{h,w}
        \big\| \hat f^l_{x,n,:,h,w} - \hat f^l_{y,n,:,h,w} \big\|_2^2
        = \frac{1}{L} \sum_l \frac{1}{H_l W_l} \sum_{h,w} 2\,(1 - \cos\theta_{n,h,w}),

    so each term lies in :math:`[0, 4]` (:math:`[0, 2]` for non-negative, post-ReLU features),
    whatever the layer's width or scale. Features of shape :math:`(N, C)` are one position.

    The caller computes the features with its chosen encoder (see :func:`encoder_features`);
    this serves both the perceptual distance and the content net's feature distance.

    Args:
        features_x: list of :math:`(N, C_l, H_l, W_l)` (or :math:`(N, C_l)`) tensors, one per layer.
        features_y: list of the same length and shapes.
        reduction: ``"mean"`` (Python float) or ``"none"`` (tensor :math:`(N,)`).

    Returns:
        Distance in :math:`[0, 4]`, lower is better; 0 for identical features.

    Examples:
        >>> f = [torch.randn(2, 8, 4, 4), torch.randn(2, 16, 2, 2)]
        >>> feature_distance(f, f)
        0.0
        >>> feature_distance([torch.ones(1, 4)], [-torch.ones(1, 4)])
        4.0
    """
    fn = "feature_distance"
    _check_reduction(fn, reduction)
    fx = _check_feature_list(fn, "features_x", features_x)
    fy = _check_feature_list(fn, "features_y", features_y)
    if len(fx) != len(fy):
        raise ValueError(f"{fn}: features_x has {len(fx)} layers but features_y has {len(fy)}")
    n = fx[0].shape[0]
    per_layer = []
    for i, (a, b) in enumerate(zip(fx, fy)):
        if a.shape != b.shape:
            raise ValueError(
                f"{fn}: layer {i} shapes differ, features_x[{i}] {tuple(a.shape)} vs "
                f"features_y[{i}] {tuple(b.shape)}"
            )
        if a.shape[0] != n:
            raise ValueError(
                f"{fn}: all layers must have the same batch size, layer 0 has {n} and layer {i} "
                f"has {a.shape[0]}"
            )
        a = _unit_channels(a.flatten(2) if a.ndim > 2 else a.unsqueeze(-1))
        b = _unit_channels(b.flatten(2) if b.ndim > 2 else b.unsqueeze(-1))
        per_layer.append((a - b).pow(2).sum(1).mean(-1))
    values = torch.stack(per_layer).mean(0)
    return _reduce(values, reduction)


# --------------------------------------------------------------------------------------
# style closeness: a set of outputs vs a set of style images
# --------------------------------------------------------------------------------------


def _mean_gram(f: torch.Tensor) -> torch.Tensor:
    """Mean over the set of G_n = F_n F_n^T / (C H W), F_n in R^{C x HW}; float64."""
    f = f.double()
    f = f.flatten(2) if f.ndim > 2 else f.unsqueeze(-1)
    n, c, hw = f.shape
    gram = torch.bmm(f, f.transpose(1, 2)) / (c * hw)
    return gram.mean(0)


def gram_distance(
    features_out: Sequence[torch.Tensor], features_style: Sequence[torch.Tensor]
) -> float:
    r"""Squared distance between the mean Gram matrices of two feature sets.

    Per layer :math:`l`, each image's Gram matrix is
    :math:`G_n = F_n F_n^\top / (C H W)` with :math:`F_n \in \mathbb{R}^{C \times HW}`; each
    set is summarised by its mean Gram matrix :math:`\bar G`; the distance is

    .. math::

        d = \frac{1}{L} \sum_l \big\| \bar G^l_{\text{out}} - \bar G^l_{\text{style}} \big\|_F^2 .

    The sets may differ in size (:math:`N` vs :math:`M`) and spatial size, but each layer's
    channel count must match. Computed in float64.

    Args:
        features_out: list of :math:`(N, C_l, H_l, W_l)` tensors, one per layer.
        features_style: list of :math:`(M, C_l, H'_l, W'_l)` tensors, same number of layers.

    Returns:
        Python float :math:`\ge 0`, lower is better; its scale depends on the encoder's
        feature magnitudes, so compare values only for the same encoder and layers.

    Examples:
        >>> f = [torch.rand(3, 8, 4, 4)]
        >>> gram_distance(f, f)
        0.0
    """
    fn = "gram_distance"
    fo = _check_feature_list(fn, "features_out", features_out)
    fs = _check_feature_list(fn, "features_style", features_style)
    if len(fo) != len(fs):
        raise ValueError(f"{fn}: features_out has {len(fo)} layers but features_style has {len(fs)}")
    total = 0.0
    for i, (a, b) in enumerate(zip(fo, fs)):
        if a.shape[1] != b.shape[1]:
            raise ValueError(
                f"{fn}: layer {i} channel counts differ, features_out[{i}] has {a.shape[1]} "
                f"and features_style[{i}] has {b.shape[1]}"
            )
        total += float((_mean_gram(a) - _mean_gram(b)).pow(2).sum())
    return total / len(fo)


#: Histogram ranges of the Lab channels used by :func:`lab_histogram_distance`.
_LAB_RANGES = ((0.0, 100.0), (-128.0, 127.0), (-128.0, 127.0))


def _lab_histograms(images: torch.Tensor, bins: int) -> torch.Tensor:
    from kornia.color import rgb_to_lab

    lab = rgb_to_lab(images.clamp(0.0, 1.0).float())
    hists = []
    for c, (lo, hi) in enumerate(_LAB_RANGES):
        v = lab[:, c].reshape(-1).double().clamp(lo, hi)
        h = torch.histc(v, bins=bins, min=lo, max=hi)
        hists.append(h / h.sum())
    return torch.stack(hists)  # (3, bins)


def lab_histogram_distance(out: torch.Tensor, style: torch.Tensor, bins: int = 32) -> float:
    r"""Earth mover's distance between the Lab colour histograms of two image sets.

    Both sets are converted with :func:`kornia.color.rgb_to_lab`; for each channel, one
    histogram of all pixels of the whole set (``bins`` equal bins over L :math:`\in [0, 100]`,
    a, b :math:`\in [-128, 127]`; values outside are clamped in) is normalised to sum 1. The
    1-D earth mover's (Wasserstein-1) distance between histograms :math:`p, q` with
    cumulative sums :math:`P, Q` is taken in units of the channel's range, and averaged over
    the three channels:

    .. math::

        d = \frac{1}{3} \sum_{c \in \{L, a, b\}} \frac{1}{\text{bins}}
        \sum_{k=1}^{\text{bins}} \big| P_c(k) - Q_c(k) \big| .

    Unlike ``1 - intersection``, it grows with how far colours moved, not only whether they
    moved out of a bin. The sets may differ in size and image size.

    Args:
        out: generated images :math:`(N, 3, H, W)` in :math:`[0, 1]`.
        style: style images :math:`(M, 3, H', W')` in :math:`[0, 1]`.
        bins: number of histogram bins per channel (at least 2).

    Returns:
        Python float in :math:`[0, 1]`, lower is better; 0 for identical colour distributions.

    Examples:
        >>> a = torch.rand(2, 3, 16, 16)
        >>> lab_histogram_distance(a, a)
        0.0
    """
    fn = "lab_histogram_distance"
    _check_images(fn, out)
    _check_images(fn, style)
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"{fn}: bins must be an integer >= 2, got {bins!r}")
    with torch.no_grad():
        p = _lab_histograms(out, bins).cumsum(1)
        q = _lab_histograms(style, bins).cumsum(1)
        return float((p - q).abs().sum(1).div(bins).mean())


def _check_vector_pair(fn: str, feats_a: Tensor, feats_b: Tensor) -> tuple[Tensor, Tensor]:
    """Both feature sets checked, and of one dimension."""
    a = _check_vectors(fn, "feats_a", feats_a)
    b = _check_vectors(fn, "feats_b", feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{fn}: feature dimensions differ, feats_a {tuple(a.shape)} vs feats_b {tuple(b.shape)}"
        )
    return a, b


def kid(
    feats_a: torch.Tensor,
    feats_b: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    r"""Kernel Inception Distance: unbiased MMD² with a cubic polynomial kernel.

    With :math:`k(u, v) = (u^\top v / d + 1)^3` (Bińkowski et al., 2018) and subsets
    :math:`X = \{x_i\}_{i=1}^m`, :math:`Y = \{y_j\}_{j=1}^m` drawn without replacement:

    .. math::

        \widehat{\text{MMD}}^2 = \frac{1}{m(m-1)} \sum_{i \ne j} k(x_i, x_j)
        + \frac{1}{m(m-1)} \sum_{i \ne j} k(y_i, y_j)
        - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j).

    The estimate is unbiased, so it can be slightly negative when the distributions agree.
    It is computed on ``subsets`` random subsets of size
    :math:`m = \min(\text{subset\_size}, N, M)` drawn with a :class:`torch.Generator` seeded
    with ``seed`` (the same inputs give the same result), in float64.

    Args:
        feats_a: features :math:`(N, D)`, e.g. of generated images; :math:`N \ge 2`.
        feats_b: features :math:`(M, D)`, e.g. of style images; :math:`M \ge 2`.
        subsets: number of random subsets.
        subset_size: largest subset size.
        seed: seed of the subset sampling.

    Returns:
        ``(mean, std)`` over the subsets as Python floats (population std, 0 for one subset).
        Lower is better; about 0 for samples of the same distribution.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g) + 2
        >>> kid(a, b)[0] > 0.1
        True
    """
    fn = "kid"
    a, b = _check_vector_pair(fn, feats_a, feats_b)
    if not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"{fn}: subsets must be a positive integer, got {subsets!r}")
    if not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"{fn}: subset_size must be an integer >= 2, got {subset_size!r}")
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    d = a.shape[1]
    m = min(subset_size, a.shape[0], b.shape[0])
    gen = torch.Generator().manual_seed(seed)

    def kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u @ v.T / d + 1.0) ** 3

    scores = torch.empty(subsets, dtype=torch.float64)
    for s in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=gen)[:m]]
        y = b[torch.randperm(b.shape[0], generator=gen)[:m]]
        kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
        off = m * (m - 1)
        scores[s] = (
            (kxx.sum() - kxx.diagonal().sum()) / off
            + (kyy.sum() - kyy.diagonal().sum()) / off
            - 2.0 * kxy.mean()
        )
    return float(scores.mean()), float(scores.std(correction=0))


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD square root through eigh; tiny negative eigenvalues are clamped to 0."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def fid(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    r"""Fréchet distance between Gaussians fitted to two feature sets.

    With means :math:`\mu_a, \mu_b` and unbiased covariances :math:`\Sigma_a, \Sigma_b`:

    .. math::

        \text{FID} = \|\mu_a - \mu_b\|_2^2 + \operatorname{tr}\Sigma_a + \operatorname{tr}\Sigma_b
        - 2 \operatorname{tr}\Big(\big(\Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2}\big)^{1/2}\Big).

    The trace term is computed from the eigenvalues of the symmetric PSD matrix
    :math:`\Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2}` (same spectrum as :math:`\Sigma_a
    \Sigma_b`), in float64, with tiny negative eigenvalues clamped to 0; so it stays finite
    and real when :math:`N < D` makes the covariances singular. The result is clamped at 0.
    With few samples FID is strongly biased upwards; compare values only at equal sample
    sizes and prefer :func:`kid` for small sets.

    Args:
        feats_a: features :math:`(N, D)`, :math:`N \ge 2`.
        feats_b: features :math:`(M, D)`, :math:`M \ge 2`.

    Returns:
        Python float :math:`\ge 0`, lower is better; about 0 for the same set.

    Examples:
        >>> f = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
        >>> fid(f, f) < 1e-8
        True
    """
    fn = "fid"
    a, b = _check_vector_pair(fn, feats_a, feats_b)
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = torch.cov(a.T, correction=1).reshape(a.shape[1], a.shape[1])
    cov_b = torch.cov(b.T, correction=1).reshape(b.shape[1], b.shape[1])
    root_a = _sqrtm_psd(cov_a)
    mid = root_a @ cov_b @ root_a
    mid = (mid + mid.T) / 2
    tr_cross = torch.linalg.eigvalsh(mid).clamp_min(0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2.0 * tr_cross
    return max(float(value), 0.0)


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


def encoder_features(
    encoder: Callable[[torch.Tensor], Any], images: torch.Tensor, batch_size: int = 16
) -> list[torch.Tensor]:
    r"""Run an encoder over images in batches, without gradients, and join the results per layer.

    ``encoder`` maps :math:`(B, 3, H, W)` to a list (or tuple) of feature maps, one per
    layer; a single tensor counts as one layer. An :class:`torch.nn.Module` is switched to
    ``eval()`` for the call (so batch norm and dropout do not depend on the batch) and put
    back in its previous mode afterwards.

    Args:
        encoder: callable ``(B, 3, H, W) -> list[Tensor]``.
        images: :math:`(N, 3, H, W)` in :math:`[0, 1]`.
        batch_size: images per forward pass.

    Returns:
        list of tensors :math:`(N, C_l, H_l, W_l)`, one per layer, detached.

    Examples:
        >>> enc = lambda x: [x.mean(1, keepdim=True), x[:, :, ::2, ::2]]
        >>> [tuple(f.shape) for f in encoder_features(enc, torch.rand(5, 3, 8, 8), batch_size=2)]
        [(5, 1, 8, 8), (5, 3, 4, 4)]
    """
    fn = "encoder_features"
    _check_images(fn, images)
    if not callable(encoder):
        raise ValueError(f"{fn}: encoder must be callable, got {type(encoder).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be a positive integer, got {batch_size!r}")
    from gancr.devices import eval_mode

    chunks: list[list[torch.Tensor]] = []
    with eval_mode(encoder):
        for start in range(0, images.shape[0], batch_size):
            out = encoder(images[start : start + batch_size])
            if isinstance(out, torch.Tensor):
                out = [out]
            if not isinstance(out, (list, tuple)) or not all(isinstance(o, torch.Tensor) for o in out):
                raise ValueError(
                    f"{fn}: encoder must return a tensor or a list of tensors, got {type(out).__name__}"
                )
            if chunks and len(out) != len(chunks[0]):
                raise ValueError(
                    f"{fn}: encoder returned {len(chunks[0])} layers for the first batch but "
                    f"{len(out)} for a later one"
                )
            chunks.append([o.detach() for o in out])
    return [torch.cat(layer, 0) for layer in zip(*chunks)]


def pooled(features: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Global-average-pool each layer and concatenate: feature maps -> vectors for KID / FID.

    .. math::

        v_n = \big[\, \operatorname{mean}_{h,w} f^1_{n,:,h,w},\ \dots,\
        \operatorname{mean}_{h,w} f^L_{n,:,h,w} \,\big] \in \mathbb{R}^{\sum_l C_l}.

    Args:
        features: list of :math:`(N, C_l, H_l, W_l)` tensors (:math:`(N, C_l)` is kept as is).

    Returns:
        tensor :math:`(N, D)` with :math:`D = \sum_l C_l`.

    Examples:
        >>> pooled([torch.ones(2, 3, 4, 4), torch.zeros(2, 5)]).shape
        torch.Size([2, 8])
    """
    fs = _check_feature_list("pooled", "features", features)
    n = fs[0].shape[0]
    for i, f in enumerate(fs):
        if f.shape[0] != n:
            raise ValueError(
                f"pooled: all layers must have the same batch size, layer 0 has {n} and layer {i} has {f.shape[0]}"
            )
    return torch.cat([f.flatten(2).mean(-1) if f.ndim > 2 else f for f in fs], dim=1)


def _inception_weights_file(weights: str | os.PathLike | None) -> Path:
    """The local file to load, or :class:`WeightsUnavailable`; never touches the network."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"inception_features: weights file {str(path)!r} does not exist; pass the path of "
                "torchvision's inception_v3 state dict (inception_v3_google-0cc3c7bd.pth)"
            )
        return path
    from torchvision.models import Inception_V3_Weights

    url = Inception_V3_Weights.IMAGENET1K_V1.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not path.is_file():
        raise WeightsUnavailable(
            f"inception_features: torchvision's inception_v3 weights are not cached at {str(path)!r} "
            f"and gancr does not download them. Download {url} to that path (or call "
            "torchvision.models.inception_v3(weights='IMAGENET1K_V1') once while online), or pass "
            "weights=<path to the .pth file>; or use encoder_features() + pooled() with another encoder."
        )
    return path


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"inception_features: cannot read weights file {str(path)!r}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"inception_features: weights file {str(path)!r} does not hold a state dict "
            f"(got {type(state).__name__})"
        )
    return state


def inception_features(
    images: torch.Tensor,
    weights: str | os.PathLike | None = None,
    batch_size: int = 32,
) -> tuple[torch.Tensor, dict[str, Any]]:
    r"""Inception-v3 pool features (2048-d) of images, from torchvision's pretrained weights.

    Images are resized to :math:`299 \times 299` (bilinear, antialiased), normalised with the
    ImageNet mean and std, and passed through torchvision's ``inception_v3`` (with its
    ``transform_input``, as its pretrained weights expect) up to the global average pool.

    The weights are never downloaded: with ``weights=None`` they must already be in
    torchvision's cache (``$TORCH_HOME/hub/checkpoints/inception_v3_google-0cc3c7bd.pth``);
    otherwise ``weights`` names a local state-dict file (``.pth`` or ``.safetensors``).
    These are torchvision's ImageNet weights, not the TF-ported "pt_inception" weights of
    pytorch-fid / clean-fid, so KID/FID values are comparable between gancr runs, not with
    published numbers.

    Args:
        images: :math:`(N, 3, H, W)` in :math:`[0, 1]`.
        weights: ``None`` (torchvision's cache) or a path to a state-dict file.
        batch_size: images per forward pass.

    Returns:
        ``(features, info)``: features :math:`(N, 2048)` float32 on the images' device, and
        ``{"features": "inception_v3/pool", "pretrained": True, "weights": <file path>}``.

    Raises:
        WeightsUnavailable: the weights file is not on this machine.
        ValueError: the images are not valid, or the file is not an inception_v3 state dict.
    """
    fn = "inception_features"
    _check_images(fn, images)
    path = _inception_weights_file(weights)  # before anything else that could reach the network
    state = _load_state_dict(path)
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=True)
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"inception_features: {str(path)!r} is not a torchvision inception_v3 state dict: {exc}"
        ) from exc
    model.fc = torch.nn.Identity()
    model.eval().to(images.device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=images.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=images.device).view(1, 3, 1, 1)

    def encode(batch: torch.Tensor) -> torch.Tensor:
        batch = F.interpolate(batch.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        return model((batch - mean) / std)

    feats = encoder_features(encode, images, batch_size=batch_size)[0]
    info = {"features": "inception_v3/pool", "pretrained": True, "weights": str(path)}
    return feats, info


METRIC_DOCS: dict[str, str] = {
    "ssim": (
        "Structural similarity between each input and its stylised output: local means, "
        "variances and covariance under an 11-tap Gaussian window (sigma 1.5), averaged over "
        "pixels and channels. Range [-1, 1], higher is better (1 = identical). It rewards "
        "keeping local structure and brightness, so it also penalises the colour and texture "
        "changes that style transfer is meant to make; read it as content retention, not quality."
    ),
    "psnr": (
        "Peak signal-to-noise ratio, 10 log10(1 / MSE) per image in dB, averaged over images. "
        "Range [0, inf], higher is better; identical images give inf. A pixel-wise measure: any "
        "change of colour or texture lowers it, and it says nothing about perceived structure; "
        "useful as a sanity check of how far an output moved from its input."
    ),
    "edge_f1": (
        "F1 score of the output's Canny edges against the input's, where an edge pixel matches "
        "if the other map has an edge within `tolerance` pixels (default 1). Range [0, 1], "
        "higher is better; two edge-free images score 1. Measures whether contours survive "
        "stylisation independently of colour; sensitive to the Canny thresholds, and styles "
        "that add strokes or outlines lower precision even when all content edges are kept."
    ),
    "sobel_correlation": (
        "Pearson correlation between the Sobel gradient magnitudes of input and output "
        "(grayscale), per image, averaged. Range [-1, 1], higher is better. A soft, threshold-"
        "free view of how much of the input's edge structure remains; invariant to global "
        "contrast changes, but texture added by the style lowers it."
    ),
    "feature_distance": (
        "Mean over layers of the squared distance between channel-normalised (unit-length per "
        "position) features of input and output from a chosen encoder, i.e. 2(1 - cosine "
        "similarity) averaged over positions (LPIPS without learned weights). Range [0, 4] "
        "([0, 2] for post-ReLU features), lower is better. Values depend on the encoder and "
        "layers, and mean little with a randomly initialised encoder; with the content net's "
        "encoder it measures the content the model itself was trained to keep."
    ),
    "gram_distance": (
        "Squared Frobenius distance between the mean Gram matrices (channel correlations, "
        "normalised by C*H*W) of the outputs and of the style images, averaged over encoder "
        "layers. Range [0, inf), lower is better. The classic neural-style texture statistic; "
        "its scale depends on the encoder's feature magnitudes, so compare only across runs "
        "using the same encoder and layers."
    ),
    "lab_histogram_distance": (
        "Earth mover's distance between the Lab colour histograms (32 bins per channel) of all "
        "output pixels and all style pixels, in units of each channel's range, averaged over "
        "L, a and b. Range [0, 1], lower is better. Captures palette and tone only: it ignores "
        "where colours are, so a shuffled image scores like the original."
    ),
    "kid": (
        "Kernel Inception Distance: unbiased MMD^2 between output and style features with the "
        "kernel (x.y/d + 1)^3, averaged over random subsets (reported with its std). About 0 "
        "for the same distribution (may be slightly negative; range (-inf, inf) in principle, "
        "in practice small), lower is better. Unbiased, so "
        "usable with tens of images, unlike FID; on torchvision's Inception or another encoder "
        "its values are comparable only with the same feature extractor."
    ),
    "fid": (
        "Fréchet Inception Distance: Fréchet distance between Gaussians fitted (mean, "
        "covariance) to output and style features. Range [0, inf), lower is better. Strongly "
        "biased upwards for small sample sizes (and covariances are singular when N < D), so "
        "compare only at equal sample sizes, prefer KID for small sets, and do not compare "
        "with published numbers that use other Inception weights."
    ),
}


def __getattr__(name: str) -> Any:
    """``gancr.metrics.evaluate`` is :func:`gancr.evaluation.evaluate` (every metric on a run)."""
    if name == "evaluate":
        from gancr.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'gancr.metrics' has no attribute {name!r}")
