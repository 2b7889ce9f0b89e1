"""A deterministic cartoon stylisation (kornia): the built-in style domain and a known target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CARTOON_PARAMS", "cartoonize", "Cartoonize"]

#: Parameters of :func:`cartoonize`; part of the built-in data's version tag.
CARTOON_PARAMS = {
    "bilateral_passes": 4,
    "bilateral_kernel": 7,
    "sigma_color": 0.1,
    "sigma_space": 3.0,
    "lightness_step": 10.0,  # L* in [0, 100]
    "chroma_gain": 1.25,
    "chroma_step": 12.0,  # a*, b*
    "median_kernel": 5,
    "canny_low": 0.08,
    "canny_high": 0.2,
    "canny_kernel": 9,
    "canny_sigma": 2.0,
    "hysteresis_steps": 24,
    "edge_width": 2,
    "edge_darkness": 0.9,
}
_MIN_CARTOON_SIDE = 16


def _check_image(image: object, where: str) -> None:
    if not isinstance(image, Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(image).__name__}")
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(
            f"{where}: expected a tensor of shape (3, H, W) or (B, 3, H, W), "
            f"got {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        raise TypeError(f"{where}: expected a floating-point tensor in [0, 1], got {image.dtype}")


def _hysteresis(edges: Tensor, steps: int) -> Tensor:
    """Keep weak (0.5) edge pixels connected to a strong (1) one within ``steps`` pixels."""
    weak = edges > 0
    strong = edges >= 1
    for _ in range(steps):
        grown = F.max_pool2d(strong.to(edges.dtype), 3, stride=1, padding=1) > 0
        grown = grown & weak
        if torch.equal(grown, strong):
            break
        strong = grown
    return strong.to(edges.dtype)


@torch.no_grad()
def cartoonize(image: Tensor) -> Tensor:
    """A deterministic cartoon stylisation: flat colour regions with dark outlines.

    Four passes of a bilateral filter smooth the image while keeping its edges; the result
    is quantised in CIE L*a*b* (steps of 10 in L*, 12 in a* and b*, chroma raised by 25 %)
    and median-filtered; Canny edges of the smoothed image (hysteresis bounded to 24 steps),
    dilated to 2 pixels, are drawn over it in a dark shade (10 %) of the local colour.
    Not differentiable.

    Args:
        image: ``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1].

    Returns:
        a tensor of the same shape, dtype and device, in [0, 1].

    Example:
        >>> y = cartoonize(torch.rand(3, 32, 48))
        >>> y.shape
        torch.Size([3, 32, 48])
    """
    import kornia

    _check_image(image, "cartoonize")
    p = CARTOON_PARAMS
    squeeze = image.dim() == 3
    x = (image[None] if squeeze else image).to(torch.float32).nan_to_num(0.0).clamp(0.0, 1.0)
    h, w = x.shape[-2:]
    pad_h, pad_w = max(_MIN_CARTOON_SIDE - h, 0), max(_MIN_CARTOON_SIDE - w, 0)
    if pad_h or pad_w:  # the filters need a few pixels each side
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

    smooth = x
    for _ in range(p["bilateral_passes"]):
        smooth = kornia.filters.bilateral_blur(
            smooth,
            p["bilateral_kernel"],
            p["sigma_color"],
            (p["sigma_space"], p["sigma_space"]),
            border_type="replicate",
        )

    lab = kornia.color.rgb_to_lab(smooth)
    lightness = torch.round(lab[:, :1] / p["lightness_step"]) * p["lightness_step"]
    chroma = torch.round(lab[:, 1:] * p["chroma_gain"] / p["chroma_step"]) * p["chroma_step"]
    flat = kornia.color.lab_to_rgb(torch.cat([lightness, chroma], dim=1)).clamp(0.0, 1.0)
    m = p["median_kernel"] // 2
    flat = F.pad(flat, (m, m, m, m), mode="replicate")  # median_blur pads with zeros
    flat = kornia.filters.median_blur(flat, p["median_kernel"])[..., m:-m, m:-m]

    gray = kornia.color.rgb_to_grayscale(smooth)
    _, edges = kornia.filters.canny(
        gray,
        p["canny_low"],
        p["canny_high"],
        kernel_size=p["canny_kernel"],
        sigma=(p["canny_sigma"], p["canny_sigma"]),
        hysteresis=False,  # kornia's loops until convergence; bounded below instead
    )
    edges = _hysteresis(edges, p["hysteresis_steps"])
    width = p["edge_width"]
    if width > 1:
        kernel = torch.ones(width, width, device=edges.device, dtype=edges.dtype)
        edges = kornia.morphology.dilation(edges, kernel)
    out = flat * (1.0 - p["edge_darkness"] * edges)

    out = out[..., :h, :w].clamp(0.0, 1.0)
    out = out[0] if squeeze else out
    return out.to(image.dtype)


class Cartoonize(torch.nn.Module):
    """Module form of :func:`cartoonize`: ``(B, 3, H, W)`` -> ``(B, 3, H, W)``."""

    def forward(self, image: Tensor) -> Tensor:
        return cartoonize(image)


