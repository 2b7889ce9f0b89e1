"""PatchNCE, the content loss of Contrastive Unpaired Translation (Park et al., ECCV 2020).

Content is kept when each patch of the output ``y`` is recognisably the same patch of the
input ``x``: at a few layers of an encoder, ``num_patches`` positions are sampled; a small
MLP head per layer projects the features there to unit vectors; the query (a patch of ``y``)
must pick its key (the same patch of ``x``) out of the other patches of ``x`` (the
negatives), a cross-entropy over cosine similarities divided by a temperature:

.. math::

    \\ell(v, v^+, v^-) = -\\log \\frac{\\exp(v \\cdot v^+ / \\tau)}
        {\\exp(v \\cdot v^+ / \\tau) + \\sum_n \\exp(v \\cdot v^-_n / \\tau)}

averaged over patches, images and layers. The keys are constants (detached), as in CUT.
The heads and the encoder are trained with the generator's optimiser (the trainer optimises
every loss module's parameters); see the package README for why the encoder is the loss's
own rather than the generator's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from gancr import build_component
from gancr.components.base import ContentLoss, LossContext, pad_to_multiple
from gancr.registry import ComponentParams
from gancr.spec import Slot

__all__ = ["INPUT_LAYER", "PatchNCEParams", "PatchNCELoss", "patch_nce_loss", "sample_patches"]

#: The layer name of the image itself (CUT's layer 0: the RGB pixels).
INPUT_LAYER = "input"


def patch_nce_loss(query: Tensor, key: Tensor, temperature: float = 0.07) -> Tensor:
    """The InfoNCE loss of patch ``n`` of ``query`` against patch ``n`` of ``key``.

    The negatives of a query are the other patches of the same image's keys (CUT's default,
    ``nce_includes_all_negatives_from_minibatch=False``). ``key`` is detached.

    Args:
        query: ``(B, N, D)`` unit vectors (patches of the output).
        key: ``(B, N, D)`` unit vectors (the same patches of the input).
        temperature: ``tau``; smaller is sharper.

    Returns:
        The mean cross-entropy over the ``B * N`` patches (a scalar).

    Example:
        >>> v = F.normalize(torch.randn(2, 16, 8), dim=-1)
        >>> bool(patch_nce_loss(v, v) < patch_nce_loss(v, v.flip(1)))
        True
    """
    if query.shape != key.shape or query.dim() != 3:
        raise ValueError(f"query and key must both be (B, N, D), got {tuple(query.shape)} and {tuple(key.shape)}")
    dtype = torch.promote_types(query.dtype, torch.float32)  # half precision computes in float32
    query, key = query.to(dtype), key.detach().to(dtype)
    n = query.shape[1]
    positive = (query * key).sum(dim=-1, keepdim=True)  # (B, N, 1)
    negative = torch.bmm(query, key.transpose(1, 2))  # (B, N, N)
    same = torch.eye(n, dtype=torch.bool, device=query.device)
    negative = negative.masked_fill(same, float("-inf"))  # a patch is not its own negative
    logits = torch.cat([positive, negative], dim=2) / temperature
    target = torch.zeros(logits.shape[0] * n, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits.flatten(0, 1), target)


def sample_patches(feature: Tensor, ids: Tensor) -> Tensor:
    """The feature vectors of ``(B, C, h, w)`` at flat positions ``ids``: ``(B, len(ids), C)``."""
    return feature.flatten(2).transpose(1, 2)[:, ids]


class PatchNCEParams(ComponentParams):
    encoder: Slot["encoder"] = Field(
        {"name": "conv", "widths": [32, 64, 128]},
        validate_default=True,
        description="the encoder whose features are compared (the loss's own; trained with the "
        "heads unless frozen); any registered encoder",
    )
    layers: list[str] | None = Field(
        None,
        description="feature names of the encoder to compare, and 'input' for the pixels "
        "(CUT's layer 0); default: 'input' and every feature",
    )
    num_patches: int = Field(256, ge=1, description="patch positions sampled per layer and step")
    temperature: float = Field(0.07, gt=0, description="tau of the contrastive cross-entropy")
    head_channels: int = Field(256, ge=1, description="width of each layer's two-layer MLP head")

    @field_validator("layers")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("name at least one layer, or leave layers out for all")
            repeated = sorted({n for n in v if v.count(n) > 1})
            if repeated:
                raise ValueError(f"layers are repeated: {repeated}")
        return v


def _head(channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, width), nn.ReLU(inplace=True), nn.Linear(width, width))


class PatchNCELoss(ContentLoss):
    """PatchNCE (CUT, Park et al. 2020): each patch of y must match the same patch of x among x's others.

    The encoder is the loss's own (``encoder``, default a trainable conv encoder), with one
    two-layer MLP head per compared layer, created here from the encoder's ``feature_info``
    so that the trainer optimises them with the generator. ``num_patches`` positions are
    sampled per layer and step (the same ones in x and y); keys are detached. Lowest, not
    zero, when ``y`` is ``x``. Not used for the content net's reconstruction.

    Example:
        >>> loss = PatchNCELoss(encoder={"name": "conv", "widths": [8, 16]}, num_patches=32)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> bool(loss(x, x) < loss(x, x.flip(-1)))
        True
    """

    reconstruction = False
    zero_at_identity = False

    def __init__(
        self,
        encoder: object = None,
        layers: list[str] | None = None,
        num_patches: int = 256,
        temperature: float = 0.07,
        head_channels: int = 256,
    ):
        super().__init__()
        self.encoder = build_component("encoder", encoder or {"name": "conv", "widths": [32, 64, 128]})
        info = list(self.encoder.feature_info)
        names = [f.name for f in info]
        available = [INPUT_LAYER, *names]
        if layers is None:
            layers = available
        unknown = [n for n in layers if n not in available]
        if unknown:
            raise ValueError(
                f"layers {unknown} are not among the encoder's features; choose from {available}"
            )
        channels = {INPUT_LAYER: 3, **{f.name: f.channels for f in info}}
        self.layers = list(layers)
        self.indices = [None if n == INPUT_LAYER else names.index(n) for n in self.layers]
        self.heads = nn.ModuleList(_head(channels[n], head_channels) for n in self.layers)
        self.reduction = max(f.reduction for f in info)
        self.num_patches = num_patches
        self.temperature = temperature

    def _features(self, image: Tensor) -> list[Tensor]:
        needs_encoder = any(i is not None for i in self.indices)
        features = self.encoder(image) if needs_encoder else []
        return [image if i is None else features[i] for i in self.indices]

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        x = pad_to_multiple(x, self.reduction)
        y = pad_to_multiple(y, self.reduction)
        with torch.no_grad():
            keys = self._features(x)
        queries = self._features(y)
        total = []
        for head, k, q in zip(self.heads, keys, queries):
            positions = k.shape[-2] * k.shape[-1]
            ids = torch.randperm(positions, device=k.device)[: self.num_patches]
            with torch.no_grad():
                key = F.normalize(head(sample_patches(k, ids)), dim=-1)
            query = F.normalize(head(sample_patches(q, ids)), dim=-1)
            total.append(patch_nce_loss(query, key, self.temperature))
        return torch.stack(total).mean()
