"""The metrics' input checks: one uniform, explicit ``ValueError`` message per kind of input."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "RANGE_TOLERANCE",
    "check_images",
    "check_pair",
    "check_reduction",
    "reduce",
    "check_feature_list",
    "check_vectors",
    "check_vector_pair",
]

#: Values this far outside :math:`[0, 1]` are tolerated by the image checks (rounding).
RANGE_TOLERANCE = 1e-3


def check_images(fn: str, images: Any) -> None:
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
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        if not bool(torch.isfinite(images).all()):
            raise ValueError(f"{expected}, got non-finite values (NaN or inf)")
        raise ValueError(f"{expected}, got values in [{lo:.4g}, {hi:.4g}]")


def check_pair(fn: str, x: Any, y: Any) -> None:
    """Check both images of a paired metric, then that their shapes agree."""
    check_images(fn, x)
    check_images(fn, y)
    if x.shape != y.shape:
        raise ValueError(
            f"{fn}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def check_reduction(fn: str, reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise ValueError(f"{fn}: reduction must be 'mean' or 'none', got {reduction!r}")


def reduce(values: torch.Tensor, reduction: str) -> float | torch.Tensor:
    """``"mean"`` -> Python float of the mean; ``"none"`` -> the (B,) tensor itself."""
    if reduction == "none":
        return values
    return float(values.mean())


def check_feature_list(fn: str, name: str, features: Any) -> list[torch.Tensor]:
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


def check_vectors(fn: str, name: str, feats: Any, min_rows: int = 2) -> torch.Tensor:
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


def check_vector_pair(fn: str, feats_a: Tensor, feats_b: Tensor) -> tuple[Tensor, Tensor]:
    """Both feature sets checked, and of one dimension."""
    a = check_vectors(fn, "feats_a", feats_a)
    b = check_vectors(fn, "feats_b", feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{fn}: feature dimensions differ, feats_a {tuple(a.shape)} vs feats_b {tuple(b.shape)}"
        )
    return a, b
