"""What the style metrics need of an image set, accumulated image by image; the KID/FID feature space."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gancr.errors import GancrError
from gancr.metrics.features import WeightsUnavailable, encoder_features, inception_features, inception_weights_file, pooled
from gancr.metrics.style import mean_gram, mean_gram_distance

__all__ = ["SetStats", "kid_fid_features"]


class SetStats:
    """What the style metrics need of an image set, accumulated one image at a time.

    Sum of per-image Gram matrices per layer (the mean Gram matrix of
    :func:`gancr.metrics.gram_distance`), the whole-image views for the Lab histograms
    (uint8), and the KID/FID views or vectors.
    """

    def __init__(self, inception_weights: str | None = None) -> None:
        self.inception_weights = inception_weights
        self.inception_info: dict[str, Any] = {}
        self.gram_sum: list[Tensor] | None = None
        self.count = 0
        self.lab_views: list[Tensor] = []
        self.vectors: list[Tensor] = []
        self.pending_views: list[Tensor] = []  # for Inception, in chunks

    def add(self, views: Tensor, encoder: nn.Module, kid_views: Tensor | None = None) -> list[Tensor]:
        """Add one image's views; returns the encoder's features of the whole-image view.

        ``kid_views`` (Inception's inputs, 299 px) give the KID/FID vectors; without them the
        encoder's pooled features of ``views`` do.
        """
        feats = encoder_features(encoder, views, batch_size=views.shape[0])
        whole = [f[:1] for f in feats]
        grams = [mean_gram(f) for f in whole]  # one image: its Gram matrix, float64
        self.gram_sum = grams if self.gram_sum is None else [a + b for a, b in zip(self.gram_sum, grams)]
        self.count += 1
        self.lab_views.append((views[0] * 255).round().to(torch.uint8).cpu())
        if kid_views is None:
            self.vectors.append(pooled(feats).cpu())
        else:
            self.pending_views.append((kid_views * 255).round().to(torch.uint8).cpu())
            if len(self.pending_views) >= 32:  # bounded memory: Inception in chunks of images
                self.flush_inception()
        return whole

    def flush_inception(self) -> None:
        """Inception features of the images added since the last flush."""
        if not self.pending_views:
            return
        views = torch.cat(self.pending_views).float() / 255
        self.pending_views = []
        try:
            feats, self.inception_info = inception_features(views, weights=self.inception_weights)
        except ValueError as exc:  # a file that is not torchvision's inception_v3
            raise GancrError(str(exc)) from None
        self.vectors.append(feats.cpu())

    def mean_grams(self) -> list[Tensor]:
        assert self.gram_sum is not None
        return [g / self.count for g in self.gram_sum]

    def gram_distance(self, other: SetStats) -> float:
        """:func:`gancr.metrics.gram_distance` of the two sets, from their accumulated mean Gram matrices."""
        return mean_gram_distance(self.mean_grams(), other.mean_grams())

    def lab_images(self) -> Tensor:
        return torch.stack(self.lab_views).float() / 255

    def feature_vectors(self) -> Tensor:
        return torch.cat(self.vectors)


def kid_fid_features(kid_features: str, inception_weights: str | None, encoder_info: dict[str, Any]) -> dict[str, Any]:
    """Decide the KID/FID feature space: ``{"use_inception": bool, ...description}``."""
    if kid_features not in ("auto", "inception", "encoder"):
        raise GancrError(f"evaluate: kid_features must be auto, inception or encoder, got {kid_features!r}")
    reason = None
    if kid_features in ("auto", "inception"):
        try:
            path = inception_weights_file(inception_weights)
            return {"use_inception": True, "features": "inception_v3/pool", "pretrained": True,
                    "weights": str(path), "description": "torchvision Inception-v3 pool features (2048-d), pretrained"}
        except WeightsUnavailable as exc:
            if kid_features == "inception":
                raise GancrError(str(exc)) from None
            reason = f"Inception weights not on this machine: {exc}"
    out = {
        "use_inception": False,
        "features": f"{encoder_info['encoder']['name']}/pooled({', '.join(encoder_info['layers'])})",
        "pretrained": encoder_info["pretrained"],
        "description": "global-average-pooled features of the chosen encoder: " + encoder_info["description"],
    }
    if reason:
        out["fallback_reason"] = reason
    return out
