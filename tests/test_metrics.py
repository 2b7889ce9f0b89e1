"""Tests of gancr.metrics on small synthetic images and features (no files, no downloads)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from gancr import metrics as M

# --------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------


def scene(n: int = 2, size: int = 48) -> torch.Tensor:
    """Checkerboard (red), horizontal gradient (green), a disc (blue): edges of all kinds."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = torch.zeros(n, 3, size, size)
    img[:, 0] = ((xx // 8 + yy // 8) % 2).float() * 0.8 + 0.1
    img[:, 1] = xx.float() / (size - 1)
    img[:, 2] = (((xx - size // 2) ** 2 + (yy - size // 2 + 4) ** 2) < (size // 5) ** 2).float()
    # make the images of the batch differ a little
    for i in range(n):
        img[i] = img[i].roll(3 * i, dims=-2)
    return img


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from kornia.filters import gaussian_blur2d

    return gaussian_blur2d(x, (9, 9), (sigma, sigma))


def noised(x: torch.Tensor, amount: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + amount * (torch.rand(x.shape, generator=g) * 2 - 1)).clamp(0, 1)


def shifted(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.roll(x, k, dims=-1)


PERTURBATIONS = {
    "shift": (shifted, [1, 2, 4]),
    "blur": (blur, [1.0, 1.7, 2.5]),
    "noise": (noised, [0.05, 0.15, 0.4]),
}

PAIRED = {
    "ssim": M.ssim,
    "psnr": M.psnr,
    "edge_f1": M.edge_f1,
    "sobel_correlation": M.sobel_correlation,
}


def whitened(n: int, d: int, seed: int) -> torch.Tensor:
    """n samples in R^d with empirical mean exactly 0 and unbiased covariance exactly I."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    cov = z.T @ z / (n - 1)
    w = torch.linalg.cholesky(cov)
    return torch.linalg.solve_triangular(w, z.T, upper=False).T


# --------------------------------------------------------------------------------------
# content retention
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAIRED))
def test_identical_images_score_best(name):
    x = scene()
    value = PAIRED[name](x, x.clone())
    assert isinstance(value, float)
    if name == "psnr":
        assert value == float("inf")
    else:
        assert value == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", list(PAIRED))
@pytest.mark.parametrize("kind", list(PERTURBATIONS))
def test_worse_as_perturbation_grows(name, kind):
    x = scene()
    perturb, strengths = PERTURBATIONS[kind]
    values = [PAIRED[name](x, x)] + [PAIRED[name](x, perturb(x, s)) for s in strengths]
    assert all(a > b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name", list(PAIRED))
def test_reduction_none_gives_per_image_values(name):
    x = scene(3)
    y = noised(x, 0.2)
    per_image = PAIRED[name](x, y, reduction="none")
    assert isinstance(per_image, torch.Tensor) and per_image.shape == (3,)
    assert float(per_image.mean()) == pytest.approx(PAIRED[name](x, y), rel=1e-6)
    one = PAIRED[name](x[1:2], y[1:2])
    assert float(per_image[1]) == pytest.approx(one, rel=1e-5)


def test_psnr_matches_hand_computation():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0] += 0.5  # mse 0.25 -> 10 log10(4)
    y[1, 0, 0, 0] = 1.0  # mse 1/48 -> 10 log10(48)
    values = M.psnr(x, y, reduction="none")
    assert values.tolist() == pytest.approx([10 * math.log10(4), 10 * math.log10(48)], rel=1e-6)
    assert M.psnr(x, y) == pytest.approx((10 * math.log10(4) + 10 * math.log10(48)) / 2, rel=1e-6)
    assert M.psnr(x, y[:, :] * 0.5, max_val=0.5, reduction="none")[0] == pytest.approx(
        10 * math.log10(0.25 / 0.0625), rel=1e-6
    )


def test_psnr_identical_is_inf_also_per_image():
    x = scene(2)
    y = x.clone()
    y[1] = noised(x[1:2], 0.1)[0]
    values = M.psnr(x, y, reduction="none")
    assert values[0] == float("inf") and math.isfinite(float(values[1]))
    assert M.psnr(x, y) == float("inf")


def test_ssim_window_checks():
    x = scene(1, 32)
    assert M.ssim(x, blur(x, 1.0), window_size=7) > M.ssim(x, blur(x, 2.0), window_size=7)
    with pytest.raises(ValueError, match="window_size must be a positive odd integer"):
        M.ssim(x, x, window_size=4)
    with pytest.raises(ValueError, match="too small for window_size=11"):
        M.ssim(torch.rand(1, 3, 5, 5), torch.rand(1, 3, 5, 5))


def test_edge_f1_empty_edge_maps():
    flat = torch.full((2, 3, 32, 32), 0.5)
    assert M.edge_f1(flat, flat.clone()) == 1.0
    assert M.edge_f1(torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32)) == 1.0  # no edges in either
    x = scene(2, 32)
    assert M.edge_f1(x, flat) == 0.0  # all content edges lost
    assert M.edge_f1(flat, x) == 0.0  # all edges invented
    assert M.edge_f1(x, flat, reduction="none").tolist() == [0.0, 0.0]


def test_edge_f1_tolerance():
    x = torch.zeros(1, 3, 40, 40)
    x[..., 10:30, 10:30] = 1.0
    y = shifted(x, 1)
    exact = M.edge_f1(x, y, tolerance=0)
    assert exact < 0.9
    assert M.edge_f1(x, y, tolerance=1) == pytest.approx(1.0)
    assert M.edge_f1(x, y, tolerance=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tolerance must be a non-negative integer"):
        M.edge_f1(x, y, tolerance=-1)
    with pytest.raises(ValueError, match="0 < low <= high"):
        M.edge_f1(x, y, low=0.3, high=0.2)


def test_edge_f1_is_symmetric_in_its_definition():
    x = scene(2, 32)
    y = blur(x, 1.5)
    # precision and recall swap when x and y swap, so F1 is symmetric
    assert M.edge_f1(x, y) == pytest.approx(M.edge_f1(y, x))


def test_sobel_correlation_flat_images_and_invariance():
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert M.sobel_correlation(flat, flat) == 1.0
    x = scene(1, 32)
    assert M.sobel_correlation(x, flat) == 0.0
    # gradient magnitudes scale with contrast; the correlation does not
    assert M.sobel_correlation(x, x * 0.5 + 0.25) == pytest.approx(1.0, abs=1e-4)


# --------------------------------------------------------------------------------------
# feature distances
# --------------------------------------------------------------------------------------


def test_feature_distance_known_values():
    g = torch.Generator().manual_seed(0)
    f = [torch.randn(3, 8, 6, 6, generator=g), torch.randn(3, 16, 3, 3, generator=g)]
    assert M.feature_distance(f, [t.clone() for t in f]) == 0.0
    # invariant to a positive scale per position and per layer
    assert M.feature_distance(f, [f[0] * 3.0, f[1] * 0.01]) == pytest.approx(0.0, abs=1e-10)
    # opposite unit vectors: |u - (-u)|^2 = 4
    assert M.feature_distance([torch.ones(2, 4, 2, 2)], [-torch.ones(2, 4, 2, 2)]) == pytest.approx(4.0)
    # orthogonal vectors: 2
    a, b = torch.zeros(1, 2), torch.zeros(1, 2)
    a[0, 0], b[0, 1] = 1.0, 5.0
    assert M.feature_distance([a], [b]) == pytest.approx(2.0)
    # mean over layers
    assert M.feature_distance([a, a], [b, a]) == pytest.approx(1.0)


def test_feature_distance_grows_with_noise_and_per_image():
    g = torch.Generator().manual_seed(1)
    f = [torch.randn(4, 8, 5, 5, generator=g)]
    noise = torch.randn(4, 8, 5, 5, generator=g)
    values = [M.feature_distance(f, [f[0] + s * noise]) for s in (0.0, 0.1, 0.5, 2.0)]
    assert values[0] == 0.0 and all(a < b for a, b in zip(values, values[1:]))
    per = M.feature_distance(f, [f[0] + noise], reduction="none")
    assert per.shape == (4,)


def test_feature_distance_errors():
    f = [torch.randn(2, 8, 4, 4)]
    with pytest.raises(ValueError, match="features_x has 1 layers but features_y has 2"):
        M.feature_distance(f, f + f)
    with pytest.raises(ValueError, match=r"layer 0 shapes differ"):
        M.feature_distance(f, [torch.randn(2, 8, 2, 2)])
    with pytest.raises(ValueError, match="non-empty list"):
        M.feature_distance([], [])


def test_gram_distance():
    g = torch.Generator().manual_seed(2)
    f = [torch.rand(3, 8, 6, 6, generator=g), torch.rand(3, 4, 3, 3, generator=g)]
    assert M.gram_distance(f, [t.clone() for t in f]) == 0.0
    # sets of different sizes and spatial sizes
    other = [torch.rand(5, 8, 10, 10, generator=g), torch.rand(5, 4, 7, 7, generator=g)]
    d = M.gram_distance(f, other)
    assert isinstance(d, float) and d > 0
    # hand computation for one layer, one image each
    a, b = torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2)
    a[0, 0] = 1.0  # G_a = [[2, 0], [0, 0]] / 4
    b[0, 1] = 1.0  # G_b = [[0, 0], [0, 2]] / 4
    assert M.gram_distance([a], [b]) == pytest.approx(2 * 0.5**2)
    # grows as the style features drift
    values = [M.gram_distance(f, [t * (1 + s) for t in f]) for s in (0.0, 0.2, 0.5)]
    assert values[0] == 0.0 and values[0] < values[1] < values[2]
    with pytest.raises(ValueError, match="layer 0 channel counts differ"):
        M.gram_distance([torch.rand(1, 3, 4, 4)], [torch.rand(1, 5, 4, 4)])


# --------------------------------------------------------------------------------------
# colour histograms
# --------------------------------------------------------------------------------------


def test_lab_histogram_distance():
    x = scene(2)
    assert M.lab_histogram_distance(x, x.clone()) == 0.0
    # the same pixels in another arrangement and set size: still 0
    assert M.lab_histogram_distance(x, torch.cat([x, x.flip(-1)])) == pytest.approx(0.0, abs=1e-12)
    values = [M.lab_histogram_distance(x, (x + s).clamp(0, 1)) for s in (0.0, 0.1, 0.2, 0.4)]
    assert values[0] == 0.0 and all(a < b for a, b in zip(values, values[1:])), values
    # black vs white: the L channel is at opposite ends, a/b unchanged
    black, white = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 16, 16)
    d = M.lab_histogram_distance(black, white, bins=32)
    assert d == pytest.approx((31 / 32) / 3, abs=1e-2)
    assert 0.0 <= d <= 1.0
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        M.lab_histogram_distance(x, x, bins=1)


# --------------------------------------------------------------------------------------
# KID / FID
# --------------------------------------------------------------------------------------


def test_kid_same_and_shifted_distribution():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(200, 16, generator=g)
    b = torch.randn(200, 16, generator=g)
    mean, std = M.kid(a, b, subsets=20, subset_size=100)
    assert abs(mean) < 0.05 and std >= 0
    far_mean, _ = M.kid(a, b + 1.0, subsets=20, subset_size=100)
    near_mean, _ = M.kid(a, b + 0.3, subsets=20, subset_size=100)
    assert far_mean > near_mean > abs(mean)
    assert far_mean > 1.0


def test_kid_is_unbiased_and_deterministic():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(40, 8, generator=g)
    b = torch.randn(40, 8, generator=g)
    # the unbiased estimate is negative for some pairs of same-distribution samples
    values = [M.kid(a, torch.randn(40, 8, generator=g), subsets=5, subset_size=20)[0] for _ in range(10)]
    assert min(values) < 0 < max(values)
    assert M.kid(a, b, subsets=5, subset_size=20) == M.kid(a, b, subsets=5, subset_size=20)
    assert M.kid(a, b, subsets=5, subset_size=20, seed=1) != M.kid(a, b, subsets=5, subset_size=20)


def test_kid_closed_form_full_sets():
    # subset_size >= N = M: every subset is the whole set, std 0, value = unbiased MMD^2
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    k = lambda u, v: (float(u @ v) / 2 + 1) ** 3  # noqa: E731
    kxx = 2 * k(a[0], a[1]) / 2
    kyy = 2 * k(b[0], b[1]) / 2
    kxy = sum(k(u, v) for u in a for v in b) / 4
    mean, std = M.kid(a, b, subsets=3)
    assert mean == pytest.approx(kxx + kyy - 2 * kxy)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_small_sets_and_errors():
    g = torch.Generator().manual_seed(5)
    mean, std = M.kid(torch.randn(3, 4, generator=g), torch.randn(7, 4, generator=g))
    assert math.isfinite(mean) and math.isfinite(std)
    with pytest.raises(ValueError, match=r"kid: feats_a needs at least 2 feature vectors, got 1"):
        M.kid(torch.randn(1, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"kid: feats_b needs at least 2 feature vectors, got 1"):
        M.kid(torch.randn(5, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        M.kid(torch.randn(5, 4), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"must be a float tensor of shape \(N, D\)"):
        M.kid(torch.randn(5, 4, 1), torch.randn(5, 4))


def test_fid_same_set_is_zero():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(100, 8, generator=g)
    assert M.fid(a, a.clone()) == pytest.approx(0.0, abs=1e-8)
    # N < D: singular covariance, still ~0 and finite
    s = torch.randn(10, 64, generator=g)
    assert M.fid(s, s.clone()) == pytest.approx(0.0, abs=1e-6)
    other = M.fid(s, torch.randn(12, 64, generator=g))
    assert math.isfinite(other) and other > 0


def test_fid_matches_closed_form_diagonal():
    n, d = 50, 6
    mu_a = torch.arange(d, dtype=torch.float64) * 0.1
    mu_b = torch.full((d,), -0.3, dtype=torch.float64)
    var_a = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1, 1.5], dtype=torch.float64)
    var_b = torch.tensor([1.0, 0.2, 2.0, 0.7, 0.4, 4.0], dtype=torch.float64)
    a = whitened(n, d, 7) * var_a.sqrt() + mu_a
    b = whitened(n + 17, d, 8) * var_b.sqrt() + mu_b
    expected = float((mu_a - mu_b).pow(2).sum() + (var_a + var_b - 2 * (var_a * var_b).sqrt()).sum())
    assert M.fid(a, b) == pytest.approx(expected, rel=1e-3)
    assert M.fid(a.float(), b.float()) == pytest.approx(expected, rel=1e-3)


def test_fid_matches_closed_form_full_covariance():
    # cov_a = I, cov_b = L L^T: FID = |mu|^2 + d + tr(S_b) - 2 tr(S_b^{1/2})
    n, d = 80, 5
    g = torch.Generator().manual_seed(9)
    lower = torch.randn(d, d, generator=g, dtype=torch.float64).tril()
    cov_b = lower @ lower.T
    a = whitened(n, d, 10)
    b = whitened(n, d, 11) @ lower.T + 1.0
    eig = torch.linalg.eigvalsh(cov_b)
    expected = float(d * 1.0 + d + eig.sum() - 2 * eig.clamp_min(0).sqrt().sum())
    assert M.fid(a, b) == pytest.approx(expected, rel=1e-3)
    assert M.fid(b, a) == pytest.approx(expected, rel=1e-3)


def test_fid_with_few_samples_is_the_same_as_through_the_covariances():
    """N * M <= D^2 takes the nuclear norm of the centred samples' product: the same number as
    scipy's matrix square root of the covariances' product (pytorch-fid's way)."""
    from scipy import linalg

    g = torch.Generator().manual_seed(12)
    a = torch.randn(9, 40, generator=g, dtype=torch.float64)
    b = torch.randn(7, 40, generator=g, dtype=torch.float64) * 1.5 + 0.2
    cov_a, cov_b = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * root.trace())
    assert M.fid(a, b) == pytest.approx(expected, rel=1e-6)


def test_fid_errors():
    with pytest.raises(ValueError, match=r"fid: feats_b needs at least 2 feature vectors, got 1"):
        M.fid(torch.randn(4, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        M.fid(torch.randn(4, 3), torch.randn(4, 2))


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


class _TinyEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.b = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.nn.ReLU())

    def forward(self, x):
        f1 = self.a(x)
        return [f1, self.b(f1)]


def test_encoder_features_batches_and_modes():
    torch.manual_seed(0)
    enc = _TinyEncoder().train()
    x = scene(5, 16)
    feats = M.encoder_features(enc, x, batch_size=2)
    assert [tuple(f.shape) for f in feats] == [(5, 4, 16, 16), (5, 6, 8, 8)]
    assert enc.training  # mode restored
    assert not any(f.requires_grad for f in feats)
    # eval mode during the call: the same as one big batch
    whole = M.encoder_features(enc, x, batch_size=16)
    for a, b in zip(feats, whole):
        torch.testing.assert_close(a, b)
    vectors = M.pooled(feats)
    assert vectors.shape == (5, 10)
    torch.testing.assert_close(vectors[:, :4], feats[0].mean((2, 3)))
    # plugs into KID / FID and into feature_distance
    assert math.isfinite(M.fid(vectors, vectors)) and math.isfinite(M.kid(vectors, vectors)[0])
    assert M.feature_distance(feats, feats) == 0.0
    # a callable returning a single tensor is one layer
    assert len(M.encoder_features(lambda t: t.mean(1, keepdim=True), x)) == 1


def test_pooled_errors():
    with pytest.raises(ValueError, match="same batch size"):
        M.pooled([torch.rand(2, 3, 4, 4), torch.rand(3, 3)])


def test_inception_features_missing_file(tmp_path):
    with pytest.raises(M.WeightsUnavailable, match="no such file"):
        M.inception_features(scene(1, 32), weights=tmp_path / "nope.pth")


def test_inception_features_never_downloads(tmp_path, monkeypatch):
    import torch.hub

    def no_network(*args, **kwargs):
        raise AssertionError("inception_features tried to download")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(M.WeightsUnavailable, match="are not on this machine") as info:
        M.inception_features(scene(1, 32))
    assert str(tmp_path) in str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in str(info.value)
    assert "--inception-weights FILE" in str(info.value)  # the command line's option, then Python's


# --------------------------------------------------------------------------------------
# input checks, docs, import cost
# --------------------------------------------------------------------------------------

IMAGE_FUNCS = {
    "ssim": lambda t: M.ssim(t, t),
    "psnr": lambda t: M.psnr(t, t),
    "edge_f1": lambda t: M.edge_f1(t, t),
    "sobel_correlation": lambda t: M.sobel_correlation(t, t),
    "lab_histogram_distance": lambda t: M.lab_histogram_distance(t, t),
    "encoder_features": lambda t: M.encoder_features(lambda z: [z], t),
    "inception_features": lambda t: M.inception_features(t, weights="unused: the images are checked first"),
}


@pytest.mark.parametrize("fn", list(IMAGE_FUNCS))
@pytest.mark.parametrize(
    "bad",
    [torch.rand(2, 1, 16, 16), torch.rand(3, 16, 16), torch.zeros(1, 3, 16, 16, dtype=torch.uint8)],
    ids=["one-channel", "no-batch", "uint8"],
)
def test_input_check_message(fn, bad):
    with pytest.raises(ValueError) as info:
        IMAGE_FUNCS[fn](bad)
    assert str(info.value) == (
        f"{fn}: expected a float tensor of shape (B, 3, H, W) in [0, 1], "
        f"got shape {tuple(bad.shape)} dtype {bad.dtype}"
    )


@pytest.mark.parametrize("fn", list(IMAGE_FUNCS))
def test_input_check_range_and_type(fn):
    with pytest.raises(ValueError) as info:
        IMAGE_FUNCS[fn](torch.full((1, 3, 16, 16), 2.0) - 3.0)
    assert str(info.value) == (
        f"{fn}: expected a float tensor of shape (B, 3, H, W) in [0, 1], got values in [-1, -1]"
    )
    with pytest.raises(ValueError, match=rf"^{fn}: expected a float tensor .* got non-finite values"):
        IMAGE_FUNCS[fn](torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match=rf"^{fn}: expected a float tensor .* got list"):
        IMAGE_FUNCS[fn]([[0.0]])


@pytest.mark.parametrize("name", list(PAIRED))
def test_paired_shape_mismatch(name):
    with pytest.raises(ValueError) as info:
        PAIRED[name](torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 24))
    assert str(info.value) == f"{name}: x and y must have the same shape, got (2, 3, 32, 32) and (2, 3, 32, 24)"
    with pytest.raises(ValueError, match=f"{name}: reduction must be 'mean' or 'none', got 'sum'"):
        PAIRED[name](torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), reduction="sum")


def test_metric_docs_cover_every_metric():
    expected = {
        "ssim", "psnr", "edge_f1", "sobel_correlation", "lpips", "feature_distance",
        "gram_distance", "lab_histogram_distance", "kid", "fid", "chroma_energy", "hed_edge_f1",
        "relative_gram_distance",
    }  # fmt: skip
    assert set(M.METRIC_DOCS) == expected
    for name, text in M.METRIC_DOCS.items():
        assert hasattr(M, name)
        assert "Range" in text or "range" in text, name
        assert "higher is better" in text or "lower is better" in text, name


def test_all_is_complete():
    """Every public function and class of the metrics' modules is in ``gancr.metrics.__all__``."""
    import importlib

    defined = set()
    for name in ("content", "style", "features", "inception", "lpips", "hed"):
        module = importlib.import_module(f"{M.__name__}.{name}")
        defined |= {
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and (callable(v) or isinstance(v, type)) and getattr(v, "__module__", None) == module.__name__
        }
        constants = {n for n in vars(module) if n.isupper() and not n.startswith("_")}
        assert set(module.__all__) <= defined | constants, name
    assert set(M.__all__) == defined | {"METRIC_DOCS"}


def test_import_is_cheap():
    code = (
        "import sys, gancr.metrics; "
        "heavy = [m for m in ('kornia', 'timm', 'torchvision') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
