"""Decoders: the encoder's feature list back to an image ``(B, 3, H, W)`` in [0, 1].

A decoder is sized from the encoder's ``feature_info``: it upsamples by 2 once per halving
of the deepest reduction, with widths taken from the encoder's levels at each reduction
(or halved where the encoder has no level there), then a 7x7 convolution to the image.
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator
from torch import Tensor, nn

from gancr.components.base import FeatureInfo, Norm, OutputActivation, norm_layer, output_activation
from gancr.errors import BuildError
from gancr.registry import ComponentParams, Registry

__all__ = ["TransposedConvDecoder", "UpsampleConvDecoder", "UNetDecoder", "register"]


class DecoderParams(ComponentParams):
    norm: Norm = Field("instance", description="normalisation after each convolution: instance, batch or none")
    output: OutputActivation = Field("tanh", description="last activation (tanh is rescaled to [0, 1])")
    min_width: int = Field(16, gt=0, description="narrowest upsampling stage")
    widths: list[int] | None = Field(
        None, description="channels of each x2 stage, deepest first, one per halving of the encoder's "
        "reduction (default: the encoder's channels at each reduction, else half the stage before)",
    )

    @field_validator("widths")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(w <= 0 or w > 8192 for w in v):
            raise ValueError(f"widths must be between 1 and 8192, got {v}")
        return v


class UNetParams(DecoderParams):
    skip_norm: bool = Field(
        False, description="divide each skip by its root mean square (per image, over channels and positions) "
        "before it joins: encoder features of another scale than the decoder's (a pretrained VGG on 0-255 "
        "pixels) join at unit scale, their pattern unchanged",
    )


def _plan(feature_info: list[FeatureInfo], min_width: int, who: str,
          widths: list[int] | None = None) -> list[tuple[int, int, int]]:
    """(reduction after the stage, input channels, output channels) for each x2 stage."""
    deepest = feature_info[-1]
    steps = math.log2(deepest.reduction)
    if steps != int(steps):
        raise BuildError(
            f"decoder {who!r} upsamples by powers of 2, but the encoder's deepest feature "
            f"({deepest.name or 'last'}: {deepest.channels} channels) has reduction {deepest.reduction}"
        )
    if widths is not None and len(widths) != int(steps):
        raise BuildError(
            f"decoder {who!r}: widths {widths} has {len(widths)} stages, but the encoder's deepest feature has "
            f"reduction {deepest.reduction}, which takes {int(steps)} x2 stages"
        )
    by_reduction = {f.reduction: f.channels for f in feature_info}
    plan, channels, reduction = [], deepest.channels, deepest.reduction
    while reduction > 1:
        reduction //= 2
        out = widths[len(plan)] if widths is not None else by_reduction.get(reduction, max(channels // 2, min_width))
        plan.append((reduction, channels, out))
        channels = out
    return plan


def _unit_rms(f: Tensor) -> Tensor:
    """``f / rms(f)``, the root mean square taken per image over channels and positions."""
    return f * f.float().square().mean((1, 2, 3), keepdim=True).add(1e-12).rsqrt().to(f.dtype)


def _head(channels: int, out_channels: int, output: str) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7), output_activation(output))


class _StagedDecoder(nn.Module):
    """Shared forward of the decoders that start from the deepest feature."""

    stages: nn.ModuleList
    head: nn.Module

    def forward(self, features: list[Tensor]) -> Tensor:
        x = features[-1]
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    @property
    def last_layer(self) -> nn.Parameter:
        """The weight of the last convolution (used by gradient-norm balancers)."""
        return self.head[1].weight


class TransposedConvDecoder(_StagedDecoder):
    """Stride-2 transposed convolutions (the paper's decoder), then a 7x7 conv to the image."""

    def __init__(self, feature_info: list[FeatureInfo], out_channels: int = 3, norm: str = "instance",
                 output: str = "tanh", min_width: int = 16, widths: list[int] | None = None):
        super().__init__()
        plan = _plan(feature_info, min_width, "transposed_conv", widths)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=norm != "batch"),
                norm_layer(norm, cout),
                nn.ReLU(inplace=True),
            )
            for _, cin, cout in plan
        )
        width = plan[-1][2] if plan else feature_info[-1].channels
        self.head = _head(width, out_channels, output)


class UpsampleConvDecoder(_StagedDecoder):
    """Nearest-neighbour x2 upsampling then a 3x3 conv per stage: no checkerboard artefacts."""

    def __init__(self, feature_info: list[FeatureInfo], out_channels: int = 3, norm: str = "instance",
                 output: str = "tanh", min_width: int = 16, widths: list[int] | None = None):
        super().__init__()
        plan = _plan(feature_info, min_width, "upsample_conv", widths)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.ReflectionPad2d(1),
                nn.Conv2d(cin, cout, 3, bias=norm != "batch"),
                norm_layer(norm, cout),
                nn.ReLU(inplace=True),
            )
            for _, cin, cout in plan
        )
        width = plan[-1][2] if plan else feature_info[-1].channels
        self.head = _head(width, out_channels, output)


class UNetDecoder(nn.Module):
    """Upsample-conv stages that concatenate the encoder's features at each reduction (skips)."""

    def __init__(self, feature_info: list[FeatureInfo], out_channels: int = 3, norm: str = "instance",
                 output: str = "tanh", min_width: int = 16, widths: list[int] | None = None,
                 skip_norm: bool = False):
        super().__init__()
        if len(feature_info) < 2:
            f = feature_info[-1]
            raise BuildError(
                f"decoder 'unet' needs multi-scale encoder features for its skips, but the encoder "
                f"gives one level ({f.channels} channels at reduction {f.reduction}); use "
                "upsample_conv, or an encoder with several levels"
            )
        # the deepest skip source for each reduction (excluding the bottleneck itself)
        self.skip_index: dict[int, int] = {}
        for i, f in enumerate(feature_info[:-1]):
            self.skip_index[f.reduction] = i
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        stages, skips = [], []
        plan = _plan(feature_info, min_width, "unet", widths)
        for reduction, cin, cout in plan:
            skip = self.skip_index.get(reduction)
            extra = feature_info[skip].channels if skip is not None else 0
            stages.append(
                nn.Sequential(
                    nn.ReflectionPad2d(1),
                    nn.Conv2d(cin + extra, cout, 3, bias=norm != "batch"),
                    norm_layer(norm, cout),
                    nn.ReLU(inplace=True),
                )
            )
            skips.append(-1 if skip is None else skip)
        self.stages = nn.ModuleList(stages)
        self.skips = skips
        self.skip_norm = skip_norm
        width = plan[-1][2] if plan else feature_info[-1].channels
        self.head = _head(width, out_channels, output)

    def forward(self, features: list[Tensor]) -> Tensor:
        import torch

        x = features[-1]
        for stage, skip in zip(self.stages, self.skips):
            x = self.up(x)
            if skip >= 0:
                f = features[skip]
                x = torch.cat([x, _unit_rms(f) if self.skip_norm else f], dim=1)
            x = stage(x)
        return self.head(x)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.head[1].weight


def register(registry: Registry) -> None:
    registry.register("decoder", "transposed_conv", TransposedConvDecoder, params=DecoderParams)
    registry.register("decoder", "upsample_conv", UpsampleConvDecoder, params=DecoderParams)
    registry.register("decoder", "unet", UNetDecoder, params=UNetParams)
