r"""Content retention: each input ``x`` against its stylised output ``y``, image by image.

``x`` and ``y`` are float tensors :math:`(B, 3, H, W)` in :math:`[0, 1]` of the same shape.
The metrics take ``reduction="mean" | "none"``: ``"mean"`` returns a Python ``float`` (the
mean of the per-image values), ``"none"`` a tensor :math:`(B,)`. The differentiable pieces
(:func:`gray`, :func:`sobel_magnitude`, :func:`ssim_map`, :func:`ssim_loss`) are the ones the
content losses call, so a loss and its metric compute one quantity one way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gancr.metrics._checks import check_feature_list, check_pair, check_reduction, reduce

__all__ = [
    "gray",
    "sobel_magnitude",
    "ssim_map",
    "ssim_loss",
    "ssim",
    "psnr",
    "edge_f1",
    "edge_map_f1",
    "sobel_correlation",
    "feature_distance",
]


def gray(images: Tensor) -> Tensor:
    """Luminance ``(B, 1, H, W)`` of RGB images (:func:`kornia.color.rgb_to_grayscale`)."""
    from kornia.color import rgb_to_grayscale

    return rgb_to_grayscale(images)


def sobel_magnitude(images: Tensor) -> Tensor:
    """Sobel gradient magnitude ``(B, 1, H, W)`` of the luminance (:func:`kornia.filters.sobel`:
    normalised kernel, replicate border); differentiable. The edge loss and
    :func:`sobel_correlation` both use it."""
    from kornia.filters import sobel

    return sobel(gray(images))


def ssim_map(x: Tensor, y: Tensor, window_size: int = 11, eps: float = 1e-12) -> Tensor:
    r"""Local SSIM of every pixel and channel, ``(B, C, H, W)``: :func:`kornia.metrics.ssim` with
    ``max_val=1`` (Gaussian window, :math:`\sigma = 1.5`, ``same`` padding). Differentiable; no
    input checks (the callers check). :func:`ssim` (``eps=0``) and :func:`ssim_loss` use it."""
    from kornia.metrics import ssim as kornia_ssim

    return kornia_ssim(x, y, window_size, max_val=1.0, eps=eps)


def ssim_loss(x: Tensor, y: Tensor, window_size: int = 11) -> Tensor:
    r"""Structural dissimilarity :math:`\operatorname{mean} \operatorname{clamp}((1 - \text{SSIM}) / 2, 0, 1)`,
    a differentiable scalar in :math:`[0, 1]` (what :func:`kornia.losses.ssim_loss` computes);
    the content loss ``ssim`` is its module form.

    Examples:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> float(ssim_loss(x, x)) < 1e-6
        True
    """
    return torch.clamp((1.0 - ssim_map(x, y, window_size)) / 2, min=0, max=1).mean()


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
    check_pair("ssim", x, y)
    check_reduction("ssim", reduction)
    if not isinstance(window_size, int) or window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"ssim: window_size must be a positive odd integer, got {window_size!r}")
    if min(x.shape[-2:]) <= window_size // 2:
        raise ValueError(
            f"ssim: images of size {tuple(x.shape[-2:])} are too small for window_size={window_size}; "
            f"H and W must exceed {window_size // 2}"
        )
    local = ssim_map(x, y, window_size, eps=0.0)
    return reduce(local.flatten(1).mean(1), reduction)


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
    check_pair("psnr", x, y)
    check_reduction("psnr", reduction)
    if not isinstance(max_val, (int, float)) or not max_val > 0:
        raise ValueError(f"psnr: max_val must be a positive number, got {max_val!r}")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    values = 10.0 * torch.log10(float(max_val) ** 2 / mse)  # mse == 0 -> +inf
    return reduce(values.to(torch.promote_types(x.dtype, y.dtype)), reduction)


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
    check_pair("edge_f1", x, y)
    check_reduction("edge_f1", reduction)
    if not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"edge_f1: tolerance must be a non-negative integer, got {tolerance!r}")
    if not (0 < low <= high):
        raise ValueError(f"edge_f1: expected 0 < low <= high, got low={low!r} high={high!r}")
    from kornia.filters import canny

    with torch.no_grad():
        # float64: in float32 the convolution's rounding depends on the batch size, which flips
        # non-maximum-suppression ties (common on synthetic images) and makes an image's score
        # depend on the other images of its batch
        ex = canny(gray(x.double()), low_threshold=low, high_threshold=high)[1] > 0.5
        ey = canny(gray(y.double()), low_threshold=low, high_threshold=high)[1] > 0.5
        f1 = edge_map_f1(ex, ey, tolerance)
    return reduce(f1.to(x.dtype), reduction)


def edge_map_f1(ex: torch.Tensor, ey: torch.Tensor, tolerance: int = 1) -> torch.Tensor:
    r"""F1 of the boolean edge maps ``ey`` (an output's) against ``ex`` (its input's), ``(B, 1, H, W)``
    -> ``(B,)``, with matches within ``tolerance`` pixels (Chebyshev):
    :math:`P = |E_y \cap D_t(E_x)| / |E_y|`, :math:`R = |E_x \cap D_t(E_y)| / |E_x|`,
    :math:`F_1 = 2PR / (P + R)`; both maps empty gives 1, one empty 0."""
    k = 2 * tolerance + 1

    def dilate(e: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(e.float(), k, stride=1, padding=tolerance) > 0.5

    nx = ex.flatten(1).sum(1).double()
    ny = ey.flatten(1).sum(1).double()
    precision = torch.where(ny > 0, (ey & dilate(ex)).flatten(1).sum(1).double() / ny.clamp_min(1), 0.0)
    recall = torch.where(nx > 0, (ex & dilate(ey)).flatten(1).sum(1).double() / nx.clamp_min(1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), 0.0)
    return torch.where((nx == 0) & (ny == 0), torch.ones_like(f1), f1)


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
    check_pair("sobel_correlation", x, y)
    check_reduction("sobel_correlation", reduction)
    gx = sobel_magnitude(x).flatten(1).double()
    gy = sobel_magnitude(y).flatten(1).double()
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
    return reduce(rho.to(x.dtype), reduction)


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
    check_reduction(fn, reduction)
    fx = check_feature_list(fn, "features_x", features_x)
    fy = check_feature_list(fn, "features_y", features_y)
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
    return reduce(values, reduction)
