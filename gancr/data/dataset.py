"""The unpaired dataset: a content and a style image per sample number, a pure function of ``(seed, k)``."""

from __future__ import annotations

import hashlib
import math
import operator
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from gancr.data.image_files import decode_image
from gancr.data.resize import _randint, _uniform, random_resized_crop, resize
from gancr.data.sources import Source, count_images, resolve_source, source_label
from gancr.errors import DataError, ResourceError
from gancr.storage.files import human_size
from gancr.devices import available_memory

__all__ = ["DataWarning", "UnpairedImages", "DeviceAugment", "StepBatches"]


class DataWarning(UserWarning):
    """An image that was skipped (unreadable), and how many were skipped in a source."""


def _load_resized(path: Path, load_size: int, side: str = "shorter", draft: bool = True) -> Tensor:
    """uint8 (3, h, w) with the ``side`` (``"shorter"`` or ``"longer"``) equal to ``load_size``
    (antialiased bilinear); ``draft`` lets a JPEG decode at a reduced size first."""
    x = decode_image(path, min_side=load_size if draft and side == "shorter" else None)
    h, w = x.shape[-2:]
    current = min(h, w) if side == "shorter" else max(h, w)
    if current != load_size:
        x = resize(x, scale=load_size / current)
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def _trim_border(image: Tensor, fraction: float) -> Tensor:
    """``image`` ``(C, H, W)`` without ``round(fraction * H)`` rows and ``round(fraction * W)`` columns
    on each side (at least one pixel left each way)."""
    if fraction <= 0:
        return image
    h, w = image.shape[-2:]
    dy, dx = min(round(fraction * h), (h - 1) // 2), min(round(fraction * w), (w - 1) // 2)
    return image[:, dy : h - dy, dx : w - dx].contiguous()


def _generator(seed: int, k: int, domain: str) -> torch.Generator:
    digest = hashlib.blake2b(f"gancr.data:{seed}:{k}:{domain}".encode(), digest_size=8).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    return g


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"UnpairedImages: {name} must be a positive int, got {value!r}")
    return value


class DeviceAugment(torch.nn.Module):
    """Random resized crop, flip and (style) hue rotation of uint8 batches, on their device.

    The counterpart of ``UnpairedImages(augment=False)``: the loader only decodes and
    copies uint8 squares (a quarter of the bytes of float32), and the augmentation runs
    where the training step runs, so the loader does not starve a fast device. Each image
    gets the dataset's own crop (:func:`~gancr.data.resize.random_resized_crop`), flip and
    hue rotation, drawn on the host from torch's global random generator (which checkpoints
    save and restore); the pixels are computed on the batch's device.

    Args:
        image_size: side of the output crops.
        crop_scale: range of the crop's area, as a fraction of the square.
        flip: flip horizontally with probability 0.5.
        hue: rotate the hue by up to this fraction of the colour circle (0 to 0.5).

    Shape:
        ``(B, C, L, L)`` uint8 (or float in [0, 1]) -> ``(B, C, S, S)`` float32 in [0, 1]; the hue
        rotation needs ``C = 3``.
    """

    def __init__(self, image_size: int, crop_scale: tuple[float, float] = (0.5, 1.0), flip: bool = True,
                 hue: float = 0.0):
        super().__init__()
        self.image_size, self.crop_scale, self.flip, self.hue = image_size, tuple(crop_scale), flip, hue

    def forward(self, batch: Tensor) -> Tensor:
        crops = []
        for image in batch:
            crop = random_resized_crop(image, self.image_size, self.crop_scale)  # type: ignore[arg-type]
            flip = float(torch.rand(())) < 0.5  # drawn even without flip, as the dataset does
            crops.append(crop.flip(-1) if self.flip and flip else crop)
        out = torch.stack(crops)
        if self.hue > 0:
            from kornia.enhance import adjust_hue

            shifts = [_uniform(None, -self.hue, self.hue) * 2 * math.pi for _ in crops]
            out = adjust_hue(out, torch.tensor(shifts, dtype=out.dtype).to(out.device, non_blocking=True))
        return out.clamp_(0.0, 1.0)


class UnpairedImages(torch.utils.data.Dataset):
    """Unpaired content and style images, each sample a pure function of ``(seed, k)``.

    For sample ``k``, each domain independently draws an image, a random resized crop (area
    fraction in ``crop_scale``, aspect ratio in (3/4, 4/3)) and a horizontal flip (p=0.5)
    from a ``torch.Generator`` seeded from ``(seed, k, domain)``. Images are first resized so
    that their shorter side is ``load_size`` (smaller ones are scaled up) and rounded to
    8 bits, whether cached or not, so ``cache`` never changes the data.

    Args:
        content: a source of content images (anything :func:`resolve_source` takes).
        style: a source of style images.
        image_size: side ``S`` of the square crops.
        load_size: the shorter side after loading (or the longer, ``load_side="longer"``);
            default ``round(1.125 * image_size)``.
        load_side: which side ``load_size`` sets: ``"shorter"`` or ``"longer"``.
        crop_scale: range of the crop's area as a fraction of the loaded image.
        flip: flip horizontally with probability 0.5.
        style_hue: rotate the hue of style samples by a uniform fraction of the colour
            circle in ``[-style_hue, style_hue]`` (0 to 0.5), so a discriminator judges a
            small style set by its look (flat areas, outlines, strokes) rather than its colours.
        style_border: cut this fraction of each side off every style image after loading
            (0 to < 0.5), so no style sample shows the image's frame or border strip;
            :meth:`style_images` still returns the whole images.
        augment: crop, flip and jitter here (the default). ``False`` returns the centred
            ``load_size`` square of the drawn image as uint8, for :class:`DeviceAugment` to
            crop, flip and jitter on the training device.
        seed: the data seed.
        cache: keep the decoded, resized images in memory (uint8).

    Every file is decoded once when the dataset is made; an unreadable one gives a
    :class:`DataWarning` naming it, then one summary warning per source, and is left out.

    ``len(dataset)`` is the number of content images (a nominal epoch), but any ``k >= 0``
    is valid: a trainer indexes by global sample number ``step * batch + i``.

    Returns (``dataset[k]``):
        ``{"content": (3, S, S), "style": (3, S, S)}``, float32 in [0, 1].
    """

    def __init__(
        self,
        content: Source,
        style: Source,
        *,
        image_size: int,
        load_size: int | None = None,
        load_side: str = "shorter",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        flip: bool = True,
        style_hue: float = 0.0,
        style_border: float = 0.0,
        augment: bool = True,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        self.image_size = _positive_int(image_size, "image_size")
        if load_size is None:
            self.load_size = max(1, round(image_size * 1.125))
        else:
            self.load_size = _positive_int(load_size, "load_size")
        try:
            lo, hi = (float(v) for v in crop_scale)
        except (TypeError, ValueError):
            raise ValueError(
                f"UnpairedImages: crop_scale must be two numbers, got {crop_scale!r}"
            ) from None
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(
                f"UnpairedImages: crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale!r}"
            )
        self.crop_scale = (lo, hi)
        if load_side not in ("shorter", "longer"):
            raise ValueError(f"UnpairedImages: load_side must be 'shorter' or 'longer', got {load_side!r}")
        self.load_side = load_side
        self.flip = bool(flip)
        if not 0.0 <= float(style_hue) <= 0.5:
            raise ValueError(f"UnpairedImages: style_hue must be in [0, 0.5], got {style_hue!r}")
        self.style_hue = float(style_hue)
        if not 0.0 <= float(style_border) < 0.5:
            raise ValueError(f"UnpairedImages: style_border must be in [0, 0.5), got {style_border!r}")
        self.style_border = float(style_border)
        self.augment = bool(augment)
        self.seed = operator.index(seed)
        self.cache = bool(cache)

        self.content_source = source_label(content)
        self.style_source = source_label(style)
        self.content_paths, self._content_cache = self._validate(content, self.content_source)
        self.style_paths, self._style_cache = self._validate(style, self.style_source, self.style_border)

    def _load(self, path: Path, border: float = 0.0) -> Tensor:
        """uint8 ``(3, h, w)`` at the loading size, ``border`` cut off each side."""
        return _trim_border(_load_resized(path, self.load_size, self.load_side), border)

    def _validate(self, source: Source, label: str, border: float = 0.0) -> tuple[list[Path], list[Tensor] | None]:
        paths = resolve_source(source)

        def attempt(p: Path) -> Tensor | DataError:
            try:
                return self._load(p, border)
            except DataError as e:
                return e

        workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
        workers = self._check_memory(len(paths), label, workers)
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(attempt, paths))
        else:
            results = [attempt(p) for p in paths]

        good: list[Path] = []
        images: list[Tensor] = []
        bad = 0
        for p, r in zip(paths, results):
            if isinstance(r, DataError):
                bad += 1
                warnings.warn(f"skipping unreadable image: {r}", DataWarning, stacklevel=3)
            else:
                good.append(p)
                if self.cache:
                    images.append(r)
        if bad:
            message = f"skipped {bad} unreadable image(s) in {label}"
            warnings.warn(message, DataWarning, stacklevel=3)
        if not good:
            raise DataError(f"no usable images in {label}: all {count_images(len(paths))} are unreadable")
        return good, (images if self.cache else None)

    def _check_memory(self, n: int, label: str, workers: int) -> int:
        """Refuse a load size whose images cannot fit in memory; fewer decoding threads when tight."""
        free = available_memory()
        if free is None:
            return workers
        area = self.load_size**2 * 4 / 3  # an image at load size, of aspect up to 4:3
        per_thread = 2 * 3 * 4 * area  # decoded and resized, float32
        cached = 3 * area * n if self.cache else 0.0  # uint8
        if per_thread + cached > free:
            raise ResourceError(
                f"data.load_size {self.load_size}: loading the {count_images(n)} of {label} at that size needs "
                f"about {human_size(per_thread + cached)} of memory, and {human_size(free)} is free; lower "
                "data.load_size (by default 1.125 x training.image_size)"
                + (", or set data.cache: false" if self.cache else "")
            )
        return max(1, min(workers, int((free - cached) // per_thread)))

    def __len__(self) -> int:
        return len(self.content_paths)

    def style_images(self) -> list[Tensor]:
        """The style images whole at the loading size (``load_size`` on ``load_side``), decoded in
        full (no JPEG draft): ``(3, H, W)`` float32 in [0, 1] each; what a style loss with
        ``target: images`` takes its statistics from."""
        return [_load_resized(p, self.load_size, self.load_side, draft=False).float() / 255.0
                for p in self.style_paths]

    def _sample(self, k: int, domain: str, paths: list[Path], cache: list[Tensor] | None) -> Tensor:
        g = _generator(self.seed, k, domain)
        index = _randint(g, len(paths))
        border = self.style_border if domain == "style" else 0.0
        image = cache[index] if cache is not None else self._load(paths[index], border)
        h, w = image.shape[-2:]
        if not self.augment:  # the centred square; DeviceAugment does the rest
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            return image[:, top : top + side, left : left + side].contiguous()
        out = random_resized_crop(image, self.image_size, self.crop_scale, g)
        flip = float(torch.rand((), generator=g)) < 0.5  # drawn even without flip
        if self.flip and flip:
            out = out.flip(-1)
        if domain == "style" and self.style_hue > 0:
            from kornia.enhance import adjust_hue

            shift = _uniform(g, -self.style_hue, self.style_hue) * 2 * math.pi
            out = adjust_hue(out[None], shift)[0]
        return out.clamp(0.0, 1.0).contiguous()

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        try:
            k = operator.index(k)
        except TypeError:
            raise TypeError(
                f"UnpairedImages: sample number must be an int, got {type(k).__name__}"
            ) from None
        if k < 0:
            raise IndexError(f"UnpairedImages: sample number must be >= 0, got {k}")
        return {
            "content": self._sample(k, "content", self.content_paths, self._content_cache),
            "style": self._sample(k, "style", self.style_paths, self._style_cache),
        }

    def __repr__(self) -> str:
        n_content, n_style = count_images(len(self.content_paths)), count_images(len(self.style_paths))
        return (
            f"{type(self).__name__}(content={self.content_source!r} ({n_content}), "
            f"style={self.style_source!r} ({n_style}), "
            f"image_size={self.image_size}, load_size={self.load_size}, seed={self.seed})"
        )


class StepBatches(torch.utils.data.Sampler[list[int]]):
    """Batches of global sample numbers, for a trainer's ``DataLoader``: step ``t`` is samples
    ``t*B .. t*B+B-1`` of steps ``start`` to ``stop`` (:class:`UnpairedImages` draws sample ``k``).

    With ``world_size`` processes, rank ``r`` takes its contiguous share of each global batch.
    """

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.stop, self.batch_size = start, stop, batch_size
        self.local = batch_size // world_size
        self.offset = rank * self.local

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.offset
            yield list(range(first, first + self.local))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
