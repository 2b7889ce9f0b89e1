"""What the style metrics need of an image set, accumulated image by image; the feature networks
of KID/FID and of the perceptual distance, chosen (and loaded) once per evaluation."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gancr.errors import GancrError
from gancr.metrics.features import WeightsUnavailable, encoder_features, pooled
from gancr.metrics.inception import FIDInception
from gancr.metrics.lpips import LPIPS
from gancr.metrics.style import mean_gram, mean_gram_distance

__all__ = ["SetStats", "kid_fid_features", "perceptual_features"]


class SetStats:
    """What the style metrics need of an image set, accumulated one image at a time.

    Sum of per-image Gram matrices per layer (the mean Gram matrix of
    :func:`gancr.metrics.gram_distance`), the whole-image views for the Lab histograms
    (uint8), and the KID/FID vectors: the FID Inception's features of ``kid_images`` when it
    is given (loaded once, for the whole evaluation), else the encoder's pooled features.
    """

    def __init__(self, inception: FIDInception | None = None) -> None:
        self.inception = inception
        self.gram_sum: list[Tensor] | None = None
        self.count = 0
        self.lab_views: list[Tensor] = []
        self.vectors: list[Tensor] = []

    def add(self, views: Tensor, encoder: nn.Module, kid_images: list[Tensor] | None = None) -> list[Tensor]:
        """Add one image's views; returns the encoder's features of the whole-image view.

        ``kid_images`` (the image and its quadrants at their own size, for the FID Inception)
        give the KID/FID vectors; without them the encoder's pooled features of ``views`` do.
        """
        feats = encoder_features(encoder, views, batch_size=views.shape[0])
        whole = [f[:1] for f in feats]
        grams = [mean_gram(f) for f in whole]  # one image: its Gram matrix, float64
        self.gram_sum = grams if self.gram_sum is None else [a + b for a, b in zip(self.gram_sum, grams)]
        self.count += 1
        self.lab_views.append((views[0] * 255).round().to(torch.uint8).cpu())
        if self.inception is not None and kid_images is not None:
            self.vectors.append(self.inception.features(kid_images))
        else:
            self.vectors.append(pooled(feats).cpu())
        return whole

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


def _check_choice(option: str, value: str, network: str) -> None:
    if value not in ("auto", network, "encoder"):
        raise GancrError(f"evaluate: {option} must be auto, {network} or encoder, got {value!r}")


def kid_fid_features(kid_features: str, inception_weights: str | None, encoder_info: dict[str, Any],
                     device: torch.device) -> tuple[dict[str, Any], FIDInception | None]:
    """The KID/FID feature space: ``(description, the FID Inception or None)``.

    ``auto`` uses the FID Inception when its file is found (and torch-fidelity installed),
    else the encoder, labelled as a fallback with the reason; ``inception`` requires it.
    """
    _check_choice("kid_features", kid_features, "inception")
    reason = None
    if kid_features in ("auto", "inception"):
        try:
            network = FIDInception(inception_weights, device)
            return {**network.info, "description": network.info["label"] + " pool features (2048-d)"}, network
        except GancrError as exc:
            if kid_features == "inception" or not isinstance(exc, WeightsUnavailable) and inception_weights:
                raise
            reason = str(exc)
    weights = "pretrained" if encoder_info["pretrained"] else "random weights"
    out = {
        "features": f"{encoder_info['encoder']['name']}/pooled({', '.join(encoder_info['layers'])})",
        "pretrained": encoder_info["pretrained"],
        "fallback": True,
        "label": f"fallback, not FID Inception: {encoder_info['encoder']['name']} pooled ({weights})",
        "description": "fallback, not comparable with published KID/FID: global-average-pooled features of "
                       "the chosen encoder: " + encoder_info["description"],
    }
    if reason:
        out["fallback_reason"] = reason
    return out, None


def perceptual_features(perceptual: str, lpips_weights: str | None, encoder_info: dict[str, Any],
                        device: torch.device) -> tuple[dict[str, Any], LPIPS | None]:
    """The perceptual distance: ``(description, LPIPS or None)``; like :func:`kid_fid_features`
    (``auto``: LPIPS when its backbone file is found, else the unit-normalised encoder distance)."""
    _check_choice("perceptual", perceptual, "lpips")
    reason = None
    if perceptual in ("auto", "lpips"):
        try:
            network = LPIPS(lpips_weights, device)
            return dict(network.info), network
        except GancrError as exc:
            if perceptual == "lpips" or not isinstance(exc, WeightsUnavailable) and lpips_weights:
                raise
            reason = str(exc)
    weights = "pretrained" if encoder_info["pretrained"] else "random weights"
    out = {
        **encoder_info,
        "fallback": True,
        "label": f"fallback, not LPIPS: {encoder_info['encoder']['name']} {','.join(encoder_info['layers'])} ({weights})",
        "description": "fallback, not LPIPS: unit-normalised feature distance without learned weights, in "
                       + encoder_info["description"],
    }
    if reason:
        out["fallback_reason"] = reason
    return out, None
