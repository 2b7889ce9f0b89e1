r"""Style closeness: a *set* of outputs against a *set* of style images.

The sets may differ in size and image size. Each function returns Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from gancr.metrics._checks import check_feature_list, check_images, check_reduction, check_vector_pair, reduce

__all__ = [
    "chroma_energy",
    "chroma_energies",
    "gram_matrix",
    "mean_gram",
    "mean_gram_distance",
    "gram_distance",
    "relative_gram_distance",
    "lab_histogram_distance",
    "kid",
    "fid",
]


def gram_matrix(features: Tensor) -> Tensor:
    r"""Each sample's Gram matrix :math:`G_n = F_n F_n^\top / (C H W)`, :math:`F_n \in \mathbb{R}^{C \times HW}`:
    ``(N, C, H, W)`` (or ``(N, C)``, one position) -> ``(N, C, C)``, in the features' dtype.

    The Gram style loss and :func:`gram_distance` both use it.

    Examples:
        >>> gram_matrix(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3, 3])
    """
    f = features.flatten(2) if features.ndim > 2 else features.unsqueeze(-1)
    n, c, hw = f.shape
    return torch.bmm(f, f.transpose(1, 2)) / (c * hw)


def mean_gram(features: Tensor) -> Tensor:
    """The mean Gram matrix of a set of features ``(N, C, ...)`` -> ``(C, C)``, in float64."""
    return gram_matrix(features.double()).mean(0)


def mean_gram_distance(grams_a: Sequence[Tensor], grams_b: Sequence[Tensor]) -> float:
    r""":math:`\frac{1}{L} \sum_l \| \bar G^l_a - \bar G^l_b \|_F^2` from mean Gram matrices, one per layer
    (:func:`gram_distance` of features; evaluation accumulates the means image by image)."""
    return sum(float((a - b).pow(2).sum()) for a, b in zip(grams_a, grams_b)) / len(grams_a)


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
    fo = check_feature_list(fn, "features_out", features_out)
    fs = check_feature_list(fn, "features_style", features_style)
    if len(fo) != len(fs):
        raise ValueError(f"{fn}: features_out has {len(fo)} layers but features_style has {len(fs)}")
    for i, (a, b) in enumerate(zip(fo, fs)):
        if a.shape[1] != b.shape[1]:
            raise ValueError(
                f"{fn}: layer {i} channel counts differ, features_out[{i}] has {a.shape[1]} "
                f"and features_style[{i}] has {b.shape[1]}"
            )
    return mean_gram_distance([mean_gram(a) for a in fo], [mean_gram(b) for b in fs])


def relative_gram_distance(features: Sequence[Tensor], style_grams: Sequence[Tensor]) -> Tensor:
    r"""Each image's distance from a style in Gram matrices, relative to the style's:

    .. math::

        d(a, s) = \frac{1}{L} \sum_l \frac{\| G_l(a) - G_l(s) \|_F}{\| G_l(s) \|_F},

    with :math:`G_l` the :func:`gram_matrix` of layer :math:`l`. 0 is the style's statistics
    exactly; an image that shares none of them is near 1 or above. The ratio
    :math:`d(G(x), s) / d(x, s)` is the *remaining style fraction* of a stylisation: 1 for doing
    nothing, 0 for a perfect match (``gancr bench painting``). Computed in float64.

    Args:
        features: per layer, the images' features :math:`(B, C_l, H_l, W_l)`.
        style_grams: per layer, the style's Gram matrix :math:`(C_l, C_l)` (e.g. ``gram_matrix(f)[0]``
            of the style image's features).

    Returns:
        tensor :math:`(B,)`.

    Examples:
        >>> f = [torch.rand(2, 4, 8, 8)]
        >>> float(relative_gram_distance(f, [gram_matrix(f[0][:1].double())[0]])[0])
        0.0
    """
    fs = check_feature_list("relative_gram_distance", "features", features)
    if len(fs) != len(style_grams):
        raise ValueError(f"relative_gram_distance: {len(fs)} feature layers but {len(style_grams)} style Gram matrices")
    ratios = []
    for i, (f, target) in enumerate(zip(fs, style_grams)):
        target = target.double()
        if target.shape != (f.shape[1], f.shape[1]):
            raise ValueError(f"relative_gram_distance: layer {i} has {f.shape[1]} channels but its style Gram "
                             f"matrix is {tuple(target.shape)}")
        diff = gram_matrix(f.double()) - target.to(f.device)
        ratios.append(diff.flatten(1).norm(dim=1) / target.norm().clamp_min(1e-300))
    return torch.stack(ratios).mean(0)


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
    check_images(fn, out)
    check_images(fn, style)
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"{fn}: bins must be an integer >= 2, got {bins!r}")
    with torch.no_grad():
        p = _lab_histograms(out, bins).cumsum(1)
        q = _lab_histograms(style, bins).cumsum(1)
        return float((p - q).abs().sum(1).div(bins).mean())


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
    a, b = check_vector_pair(fn, feats_a, feats_b)
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
    and real when :math:`N < D` makes the covariances singular. With few samples
    (:math:`NM \le D^2`) the same trace comes, exactly, from the singular values of the
    :math:`N \times M` product of the centred samples, without a :math:`D \times D`
    decomposition. The result is clamped at 0.
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
    a, b = check_vector_pair(fn, feats_a, feats_b)
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    mu_a, mu_b = a.mean(0), b.mean(0)
    (n, d), m = a.shape, b.shape[0]
    if n * m <= d * d:
        # few samples (e.g. 2048-d Inception features of tens of images): with the centred
        # samples A, B, the nonzero eigenvalues of Σa Σb are those of (A Bᵀ)(A Bᵀ)ᵀ / ((n-1)(m-1)),
        # so the trace term is the nuclear norm of the small n x m matrix A Bᵀ: exact, and
        # without a D x D eigendecomposition
        ca, cb = a - mu_a, b - mu_b
        tr_a, tr_b = ca.pow(2).sum() / (n - 1), cb.pow(2).sum() / (m - 1)
        tr_cross = torch.linalg.svdvals(ca @ cb.T).sum() / math.sqrt((n - 1) * (m - 1))
    else:
        cov_a = torch.cov(a.T, correction=1).reshape(d, d)
        cov_b = torch.cov(b.T, correction=1).reshape(d, d)
        root_a = _sqrtm_psd(cov_a)
        mid = root_a @ cov_b @ root_a
        mid = (mid + mid.T) / 2
        tr_a, tr_b = cov_a.trace(), cov_b.trace()
        tr_cross = torch.linalg.eigvalsh(mid).clamp_min(0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + tr_a + tr_b - 2.0 * tr_cross
    return max(float(value), 0.0)


def chroma_energy(images: Tensor, reduction: str = "mean") -> float | Tensor:
    r"""High-frequency colour: the energy of the Laplacian of the CIE Lab chroma channels.

    .. math::

        E(x) = \operatorname{mean}_{p} \big[(\Delta a)^2 + (\Delta b)^2\big] / 128^2,

    with :math:`a, b` from :func:`kornia.color.rgb_to_lab` and :math:`\Delta` the 3x3
    Laplacian (:func:`kornia.filters.laplacian`, reflect border). Flat colour regions score
    near 0; colour noise and stripes score high, while changes of brightness alone do not
    count. Comparing an output's energy with its input's (``content/chroma_noise``), next to
    the style images' energy over the inputs' (``style/chroma_noise``), shows whether a model
    adds colour noise that the style does not have. Depends on the image scale: compare sets
    evaluated at the same size.

    Args:
        images: :math:`(B, 3, H, W)` in :math:`[0, 1]`.
        reduction: ``"mean"`` (Python float) or ``"none"`` (tensor :math:`(B,)`).

    Examples:
        >>> flat = torch.full((1, 3, 16, 16), 0.5)
        >>> chroma_energy(flat)
        0.0
    """
    check_images("chroma_energy", images)
    check_reduction("chroma_energy", reduction)
    return reduce(chroma_energies(images), reduction)


def chroma_energies(images: Tensor) -> Tensor:
    """:func:`chroma_energy` of each image, ``(B, 3, H, W)`` -> ``(B,)`` float32, without checking
    the input (no host sync) and differentiable: for losses."""
    from kornia.color import rgb_to_lab
    from kornia.filters import laplacian

    ab = rgb_to_lab(images.float().clamp(0, 1))[:, 1:] / 128.0
    lap = laplacian(ab, 3, border_type="reflect", normalized=False)
    return lap.square().sum(1).flatten(1).mean(1)

