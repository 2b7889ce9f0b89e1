"""Discriminators: ``(B, 3, H, W)`` images to logits, for any input size.

``patchgan`` gives a map ``(B, 1, h, w)`` of patch logits, ``multiscale`` a list of such
maps (one per scale), ``dcgan`` one logit per image ``(B, 1)``.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gancr.components.base import norm_layer
from gancr.registry import ComponentParams, Registry

__all__ = ["PatchGAN", "MultiScale", "DCGAN", "register"]

DNorm = Literal["instance", "batch", "spectral", "none"]


def _conv(cin: int, cout: int, stride: int, norm: str, bias: bool | None = None) -> nn.Module:
    conv = nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=norm not in ("batch", "instance") if bias is None else bias)
    if norm == "spectral":
        conv = nn.utils.parametrizations.spectral_norm(conv)
    return conv


def _norm(norm: str, channels: int) -> nn.Module:
    return nn.Identity() if norm == "spectral" else norm_layer(norm, channels)


class PatchGANParams(ComponentParams):
    layers: int = Field(3, ge=1, le=6, description="stride-2 layers (3 gives 70x70 patches)")
    width: int = Field(64, gt=0, description="channels of the first layer (doubling, at most 8x)")
    norm: DNorm = Field("instance", description="normalisation of the convolutions: instance, batch, spectral (spectral norm of the weights) or none")


class PatchGAN(nn.Module):
    """PatchGAN (Isola et al. 2017): a logit per overlapping patch.

    Example:
        >>> import torch
        >>> PatchGAN(layers=3, width=8)(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 1, 6, 6])
    """

    def __init__(self, in_channels: int = 3, layers: int = 3, width: int = 64, norm: str = "instance"):
        super().__init__()
        seq: list[nn.Module] = [_conv(in_channels, width, 2, norm, bias=True), nn.LeakyReLU(0.2, inplace=True)]
        ch = width
        for n in range(1, layers + 1):
            out = width * min(2**n, 8)
            stride = 2 if n < layers else 1
            seq += [_conv(ch, out, stride, norm), _norm(norm, out), nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        seq.append(_conv(ch, 1, 1, norm, bias=True))
        self.model = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class MultiScaleParams(PatchGANParams):
    scales: int = Field(2, ge=1, le=5, description="PatchGANs on the image and its x2 downsamplings")


class MultiScale(nn.Module):
    """PatchGANs at several scales (pix2pixHD); returns a list of logit maps, finest first."""

    def __init__(self, in_channels: int = 3, scales: int = 2, layers: int = 3, width: int = 64, norm: str = "instance"):
        super().__init__()
        self.discriminators = nn.ModuleList(PatchGAN(in_channels, layers, width, norm) for _ in range(scales))

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, d in enumerate(self.discriminators):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


class DCGANParams(ComponentParams):
    layers: int = Field(4, ge=1, le=7, description="stride-2 conv layers")
    width: int = Field(64, gt=0, description="channels of the first layer (doubling, at most 8x)")
    norm: DNorm = Field("batch", description="normalisation of the convolutions: batch (DCGAN's), instance, spectral or none")


class DCGAN(nn.Module):
    """A global discriminator (the paper's), made size-agnostic by global average pooling.

    Example:
        >>> import torch
        >>> DCGAN(width=8)(torch.rand(2, 3, 40, 56)).shape
        torch.Size([2, 1])
    """

    def __init__(self, in_channels: int = 3, layers: int = 4, width: int = 64, norm: str = "batch"):
        super().__init__()
        seq: list[nn.Module] = []
        ch = in_channels
        for n in range(layers):
            out = width * min(2**n, 8)
            first = n == 0  # no normalisation on the first layer, as in DCGAN
            seq.append(_conv(ch, out, 2, norm, bias=True if first else None))
            if not first:
                seq.append(_norm(norm, out))
            seq.append(nn.LeakyReLU(0.2, inplace=True))
            ch = out
        self.features = nn.Sequential(*seq)
        self.classifier = nn.Linear(ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def register(registry: Registry) -> None:
    registry.register("discriminator", "patchgan", PatchGAN, params=PatchGANParams)
    registry.register("discriminator", "multiscale", MultiScale, params=MultiScaleParams)
    registry.register("discriminator", "dcgan", DCGAN, params=DCGANParams)
