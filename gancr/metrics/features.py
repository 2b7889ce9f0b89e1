r"""Features for the metrics: any encoder in batches, pooled vectors, Inception-v3 pool features.

Nothing is downloaded: Inception's weights must be on this machine (see :class:`WeightsUnavailable`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gancr.devices import eval_mode
from gancr.metrics._checks import check_feature_list, check_images

__all__ = ["WeightsUnavailable", "encoder_features", "pooled", "inception_weights_file", "inception_features"]


class WeightsUnavailable(RuntimeError):
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


def inception_weights_file(weights: str | os.PathLike | None) -> Path:
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
    check_images(fn, images)
    path = inception_weights_file(weights)  # before anything else that could reach the network
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
