"""Necks: the style-generation sub-network between encoder and decoder, at the bottleneck.

A neck maps the encoder's deepest feature ``(B, C, h, w)`` to ``(B, out_channels, h, w)``.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from gancr.components.base import Norm, norm_layer
from gancr.registry import ComponentParams, Registry

__all__ = ["IdentityNeck", "ResBlocks", "ResBlock", "register"]


class IdentityNeck(nn.Identity):
    """No neck: the encoder's deepest feature goes straight to the decoder."""

    def __init__(self, channels: int):
        super().__init__()
        self.in_channels = self.out_channels = channels


class ResBlock(nn.Module):
    """``x + conv(relu(norm(conv(x))))`` with reflection padding (CycleGAN's residual block)."""

    def __init__(self, channels: int, norm: str = "instance"):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "batch"),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "batch"),
            norm_layer(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResBlocksParams(ComponentParams):
    blocks: int = Field(4, ge=0, description="number of residual blocks (CycleGAN uses 9)")
    norm: Norm = Field("instance", description="normalisation inside each block: instance, batch or none")
    in_channels: int | None = Field(
        None, gt=0, description="expected input channels (default: whatever the encoder gives)"
    )
    width: int | None = Field(
        None, gt=0, le=8192, description="channels of the blocks: a 3x3 convolution projects the input to "
        "them first, and the decoder gets them (default: the input's; narrower is cheaper behind a wide encoder)",
    )


class ResBlocks(nn.Module):
    """``blocks`` residual blocks at the bottleneck: the paper's style generation sub-network,
    ``(B, C, h, w) -> (B, width or C, h, w)``.

    Example:
        >>> import torch
        >>> ResBlocks(channels=16, blocks=2)(torch.rand(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, channels: int, blocks: int = 4, norm: str = "instance", in_channels: int | None = None,
                 width: int | None = None):
        super().__init__()
        self.in_channels = in_channels or channels
        self.out_channels = width or self.in_channels
        self.project: nn.Module = nn.Identity()
        if self.out_channels != self.in_channels:
            self.project = nn.Sequential(
                nn.ReflectionPad2d(1),
                nn.Conv2d(self.in_channels, self.out_channels, 3, bias=norm != "batch"),
                norm_layer(norm, self.out_channels),
                nn.ReLU(inplace=True),
            )
        self.blocks = nn.Sequential(*(ResBlock(self.out_channels, norm) for _ in range(blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.project(x))


def register(registry: Registry) -> None:
    registry.register("neck", "identity", IdentityNeck, aliases=("none",))
    registry.register("neck", "resblocks", ResBlocks, params=ResBlocksParams)
