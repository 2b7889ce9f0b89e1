"""Differentiable Augmentation (DiffAugment; Zhao et al., NeurIPS 2020) for any discriminator.

A discriminator trained on a handful of style images memorises them, and then gives the
generator no useful signal. DiffAugment applies the same kind of random, differentiable
augmentation to every image the discriminator sees, real or generated, in the
discriminator's updates *and* the generator's (so gradients flow back through the
augmentation to the generator). The augmented images never reach the generator's training
data, so its outputs are not augmented themselves.

The three policies are those of the reference implementation
(``mit-han-lab/data-efficient-gans``, ``DiffAugment_pytorch.py``), in plain torch:

- ``color``: random brightness (``+ U(-0.5, 0.5)``), saturation (``x U(0, 2)``) and contrast
  (``x U(0.5, 1.5)``) per image;
- ``translation``: a random integer shift of up to ``translation_ratio`` of each side, per
  image, with zero (mid-grey) padding;
- ``cutout``: one square-ish hole of ``cutout_ratio`` of each side at a random place, per
  image, set to zero (mid-grey).

The reference works on images in [-1, 1]; gancr's are in [0, 1], so the functions map to
[-1, 1] and back, which keeps the reference's magnitudes and its mid-grey fill exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from gancr import build_component
from gancr.registry import ComponentParams
from gancr.spec import Slot

__all__ = [
    "POLICIES",
    "Policy",
    "diff_augment",
    "rand_color",
    "rand_translation",
    "rand_cutout",
    "DiffAugParams",
    "DiffAugDiscriminator",
]

Policy = Literal["color", "translation", "cutout"]
POLICIES: tuple[str, ...] = ("color", "translation", "cutout")


def _rand(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """``U(0, 1)`` of shape ``(B, 1, 1, 1)``, on ``x``'s device and in its dtype."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Integers in ``[low, high)`` of shape ``(B, 1, 1)``."""
    return torch.randint(low, high, (x.shape[0], 1, 1), generator=generator, device=x.device)


def rand_color(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random brightness, saturation and contrast per image of ``(B, C, H, W)`` in [-1, 1]."""
    x = x + (_rand(x, generator) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, generator) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, generator) + 0.5) + mean


def rand_translation(x: Tensor, ratio: float = 0.125, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its height and width; zero padding."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    ty = _randint(-sh, sh + 1, x, generator)
    tx = _randint(-sw, sw + 1, x, generator)
    batch, gy, gx = torch.meshgrid(
        torch.arange(b, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device),
        indexing="ij",
    )
    gy = (gy + ty + 1).clamp(0, h + 1)
    gx = (gx + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[batch, gy, gx].permute(0, 3, 1, 2)


def rand_cutout(x: Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Zero one ``ratio``-sized rectangle per image, at a random centre (it may be clipped)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if ch == 0 or cw == 0:
        return x
    oy = _randint(0, h + (1 - ch % 2), x, generator)
    ox = _randint(0, w + (1 - cw % 2), x, generator)
    batch, gy, gx = torch.meshgrid(
        torch.arange(b, device=x.device), torch.arange(ch, device=x.device), torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gy = (gy + oy - ch // 2).clamp(0, h - 1)
    gx = (gx + ox - cw // 2).clamp(0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[batch, gy, gx] = 0
    return x * mask.unsqueeze(1)


def diff_augment(
    x: Tensor,
    policy: Sequence[str] = POLICIES,
    *,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DiffAugment of images ``(B, C, H, W)`` in [0, 1]: the policies in order, fresh
    random parameters per image. Differentiable w.r.t. ``x``.

    Args:
        x: images in [0, 1].
        policy: any of ``color``, ``translation``, ``cutout``, applied in this order.
        translation_ratio: the largest shift, as a fraction of each side.
        cutout_ratio: the hole's size, as a fraction of each side.
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global one).

    Example:
        >>> x = torch.rand(2, 3, 16, 16, requires_grad=True)
        >>> y = diff_augment(x, ["color", "translation", "cutout"])
        >>> y.shape, y.requires_grad
        (torch.Size([2, 3, 16, 16]), True)
    """
    unknown = [p for p in policy if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policies {unknown}; choose from {list(POLICIES)}")
    if not policy:
        return x
    x = x * 2 - 1
    for p in policy:
        if p == "color":
            x = rand_color(x, generator)
        elif p == "translation":
            x = rand_translation(x, translation_ratio, generator)
        else:
            x = rand_cutout(x, cutout_ratio, generator)
    return (x + 1) * 0.5


class DiffAugParams(ComponentParams):
    inner: Slot["discriminator"] = Field(
        {"name": "patchgan"}, validate_default=True,
        description="the discriminator that sees the augmented images: any registered one",
    )
    policy: list[Policy] = Field(
        ["color", "translation", "cutout"],
        description="augmentations, applied in this order (empty: none)",
    )
    translation_ratio: float = Field(0.125, ge=0, le=0.5, description="largest shift, as a fraction of each side")
    cutout_ratio: float = Field(0.5, gt=0, le=1, description="size of the hole, as a fraction of each side")

    @field_validator("policy")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        repeated = sorted({p for p in v if v.count(p) > 1})
        if repeated:
            raise ValueError(f"policies are repeated: {repeated}")
        return v


class DiffAugDiscriminator(nn.Module):
    """DiffAugment (Zhao et al. 2020) in front of any discriminator: the same random, differentiable augmentation of reals and fakes.

    Each call draws fresh augmentation parameters per image. gancr calls the discriminator
    once on the real batch and once on the fakes (``StyleBatch``), so reals and fakes get
    the same policy with independent draws, as in the reference implementation. The
    augmentation runs in training mode only; ``eval()`` passes images straight through.

    Example:
        >>> d = DiffAugDiscriminator(inner={"name": "patchgan", "layers": 2, "width": 8})
        >>> d(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 1, 6, 6])
    """

    def __init__(
        self,
        in_channels: int = 3,
        inner: object = None,
        policy: Sequence[str] = POLICIES,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ):
        super().__init__()
        unknown = [p for p in policy if p not in POLICIES]
        if unknown:
            raise ValueError(f"unknown DiffAugment policies {unknown}; choose from {list(POLICIES)}")
        self.inner = build_component("discriminator", inner or {"name": "patchgan"}, in_channels=in_channels)
        self.policy = list(policy)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def augment(self, x: Tensor) -> Tensor:
        """The augmentation this discriminator applies in training mode."""
        return diff_augment(
            x, self.policy, translation_ratio=self.translation_ratio, cutout_ratio=self.cutout_ratio
        )

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        return self.inner(self.augment(x) if self.training else x)

    def extra_repr(self) -> str:
        return (
            f"policy={self.policy}, translation_ratio={self.translation_ratio}, "
            f"cutout_ratio={self.cutout_ratio}"
        )
