r"""Features for the metrics: any encoder in batches, and pooled vectors.

The pretrained networks of the metrics — the FID Inception (:mod:`gancr.metrics.inception`)
and LPIPS (:mod:`gancr.metrics.lpips`) — are never downloaded: their files must be on this
machine, else :class:`WeightsUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gancr.devices import eval_mode
from gancr.errors import GancrError
from gancr.metrics._checks import check_feature_list, check_images

__all__ = ["WeightsUnavailable", "encoder_features", "pooled"]


class WeightsUnavailable(GancrError, RuntimeError):
    """Pretrained weights a metric needs are not available on this machine.

    Raised instead of downloading: metrics never reach the network. The message names the
    file that was looked for and how to provide it.
    """


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
    check_images(fn, images)
    if not callable(encoder):
        raise ValueError(f"{fn}: encoder must be callable, got {type(encoder).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be a positive integer, got {batch_size!r}")
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
    fs = check_feature_list("pooled", "features", features)
    n = fs[0].shape[0]
    for i, f in enumerate(fs):
        if f.shape[0] != n:
            raise ValueError(
                f"pooled: all layers must have the same batch size, layer 0 has {n} and layer {i} has {f.shape[0]}"
            )
    return torch.cat([f.flatten(2).mean(-1) if f.ndim > 2 else f for f in fs], dim=1)
