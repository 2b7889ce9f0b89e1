"""The image sets of an evaluation (sources or tensors, named and loaded lazily), and the square
views features see (resized with :mod:`gancr.data.resize`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gancr.data import load_image, resolve_source, source_label
from gancr.data.resize import resize
from gancr.errors import GancrError

__all__ = ["ImageSet", "Images", "image_set", "crops_of", "views_of", "check_side", "MIN_SIDE"]

#: Smallest image side the pixel metrics accept (SSIM's 11-tap window needs more than 5).
MIN_SIDE = 16

ImageSet = Any  # a source (folder, file, builtin:NAME, list), a (N,3,H,W) tensor, a list or a mapping


@dataclass
class Images:
    """Named images, loaded lazily (a file path or a tensor per name), and a description."""

    names: list[str]
    items: list[Any]
    label: str

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> Tensor:
        item = self.items[i]
        if isinstance(item, Tensor):
            return item
        return load_image(item)


def _check_tensor_image(t: Any, where: str) -> Tensor:
    if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[0] != 3 or not t.is_floating_point():
        got = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
        raise GancrError(f"evaluate: {where} must be a float image tensor of shape (3, H, W) in [0, 1], got {got}")
    return t.detach().float().clamp(0, 1)


def image_set(images: ImageSet, what: str) -> Images:
    """Names and loaders for a source, a batch tensor, a list of tensors or a name -> tensor mapping."""
    if isinstance(images, Tensor):
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4:
            raise GancrError(f"evaluate: {what} must be (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
        items = [_check_tensor_image(t, f"{what}[{i}]") for i, t in enumerate(images)]
        return Images([f"{i:04d}" for i in range(len(items))], items, f"{len(items)} tensors")
    if isinstance(images, Mapping):
        names = [str(k) for k in images]
        items = [_check_tensor_image(v, f"{what}[{k!r}]") for k, v in images.items()]
        return Images(names, items, f"{len(items)} tensors")
    if isinstance(images, Sequence) and not isinstance(images, str) and images and all(
        isinstance(t, Tensor) for t in images
    ):
        items = [_check_tensor_image(t, f"{what}[{i}]") for i, t in enumerate(images)]
        return Images([f"{i:04d}" for i in range(len(items))], items, f"{len(items)} tensors")
    paths = resolve_source(images)
    return Images([p.stem for p in paths], list(paths), f"{source_label(images)} ({len(paths)} images)")


def crops_of(image: Tensor, count: int) -> list[Tensor]:
    """The whole image, then (count 5) its four quadrants, each ``(3, h, w)`` at its own size."""
    crops = [image]
    if count == 5:
        h, w = image.shape[-2:]
        h2, w2 = h // 2, w // 2
        crops += [image[:, :h2, :w2], image[:, :h2, w2:], image[:, h2:, :w2], image[:, h2:, w2:]]
    return crops


def views_of(image: Tensor, size: int, count: int) -> Tensor:
    """``(count, 3, size, size)``: :func:`crops_of` resized to squares of ``size``."""
    return torch.stack([resize(v, (size, size)) for v in crops_of(image, count)])


def check_side(image: Tensor, name: str, what: str) -> None:
    """A :class:`GancrError` when the fitted image is too small for the pixel metrics."""
    if min(image.shape[-2:]) < MIN_SIDE:
        raise GancrError(
            f"evaluate: {what} image {name!r} is {tuple(image.shape[-2:])} after fitting; the pixel "
            f"metrics need both sides of at least {MIN_SIDE} pixels (raise max_size)"
        )
