"""The one resize of gancr and the one random resized crop.

Every image that changes size goes through :func:`resize` (antialiased bilinear, the values
kept in [0, 1]): the dataset's loading and crops, the built-in sets, the device
augmentation, evaluation's fitting and views, the trainer's sample grids and the
benchmarks. Every random crop is :func:`random_resized_crop` (torchvision's rule), whether
the data loader draws it from a sample's own generator or the training device's
augmentation from torch's global one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["resize", "fit", "crop_box", "random_resized_crop", "CROP_RATIO"]

#: The range of a random crop's aspect ratio (width / height), as torchvision's RandomResizedCrop.
CROP_RATIO = (3 / 4, 4 / 3)


def resize(images: Tensor, size: tuple[int, int] | None = None, *, scale: float | None = None) -> Tensor:
    """``images`` resized to ``size`` (height, width), or by ``scale``: antialiased bilinear,
    clamped to [0, 1]. An image already at that size is returned as it is.

    Args:
        images: ``(C, H, W)`` or ``(B, C, H, W)``, float.
        size: the output's height and width.
        scale: instead of ``size``: each side times ``scale``, rounded (at least 1 pixel).

    Example:
        >>> resize(torch.rand(3, 40, 60), scale=0.5).shape
        torch.Size([3, 20, 30])
    """
    h, w = images.shape[-2:]
    if size is None:
        if scale is None:
            raise TypeError("resize: give size or scale")
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    size = (int(size[0]), int(size[1]))
    if (h, w) == size:
        return images
    batch = images if images.dim() == 4 else images[None]
    out = F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return out if images.dim() == 4 else out[0]


def fit(image: Tensor, max_size: int | None) -> Tensor:
    """Downscale (:func:`resize`) so the longer side is at most ``max_size``; never upscale."""
    h, w = image.shape[-2:]
    if max_size is None or max(h, w) <= max_size:
        return image
    return resize(image, scale=max_size / max(h, w))


def _uniform(g: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator | None, n: int) -> int:
    return int(torch.randint(n, (), generator=g))


def crop_box(h: int, w: int, scale: tuple[float, float], generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a random crop of an ``h`` x ``w`` image (torchvision's rule):
    an area fraction drawn from ``scale`` and an aspect ratio from :data:`CROP_RATIO` (log-uniform),
    up to ten tries, else the largest centred crop of a ratio in that range.

    Draws on the host from ``generator`` (torch's global generator when None).
    """
    area = h * w
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * _uniform(generator, *scale)
        ratio = math.exp(_uniform(generator, *log_ratio))
        cw = int(round(math.sqrt(target * ratio)))
        ch = int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return _randint(generator, h - ch + 1), _randint(generator, w - cw + 1), ch, cw
    r = w / h
    if r < CROP_RATIO[0]:
        cw, ch = w, int(round(w / CROP_RATIO[0]))
    elif r > CROP_RATIO[1]:
        ch, cw = h, int(round(h * CROP_RATIO[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(image: Tensor, size: int, scale: tuple[float, float],
                        generator: torch.Generator | None = None) -> Tensor:
    """A random crop of ``image`` (:func:`crop_box`) resized to ``size`` x ``size`` (:func:`resize`).

    Args:
        image: ``(C, H, W)``, uint8 (read as ``/ 255``) or float in [0, 1], on any device.
        size: the output's side.
        scale: the range of the crop's area, as a fraction of the image's.
        generator: where the draws come from (torch's global generator when None).

    Returns:
        ``(C, size, size)`` float32 in [0, 1].
    """
    h, w = image.shape[-2:]
    top, left, ch, cw = crop_box(h, w, scale, generator)
    crop = image[:, top : top + ch, left : left + cw]
    crop = crop.to(torch.float32) / 255.0 if crop.dtype == torch.uint8 else crop.to(torch.float32)
    return resize(crop, (size, size))
