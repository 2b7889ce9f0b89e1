"""Unpaired image data for training, and built-in demo data that needs no download.

A *source* is what :func:`resolve_source` takes: a folder (searched recursively), a single
image file, a list of those, or a built-in source ``builtin:NAME``. :class:`UnpairedImages`
draws a content image and a style image for every sample number; each sample is a pure
function of ``(seed, k)``, so training resumes at any step with bit-identical data.

Built-in sources
----------------
Made from the colour photographs bundled inside scikit-image (``skimage/data/``, read by path;
nothing is ever downloaded), split so that no photograph, and no near-duplicate of one, is in
two sets:

================================  ==============================================================
``builtin:photos``                astronaut, coffee, hubble_deep_field, retina (content domain)
``builtin:cartoon``               :func:`cartoonize` of motorcycle_left, motorcycle_right, ihc
                                  (style domain; the stereo pair stays in one set)
``builtin:holdout``               chelsea, rocket (kept out of both, for evaluation)
``builtin:holdout_cartoon``       :func:`cartoonize` of exactly the ``builtin:holdout`` images,
                                  same order and file stems (the known target of a benchmark)
================================  ==============================================================

Every built-in image is first resized (antialiased) so that its shorter side is at most
512 pixels and rounded to 8 bits, then written as PNG under ``$GANCR_CACHE_DIR`` (default
``~/.cache/gancr``) in a folder whose name carries a version tag of the split and of the
cartoon algorithm, so changing either rebuilds the files. Hence
``cartoonize(load_image(holdout))`` equals ``load_image(holdout_cartoon)`` up to 8-bit rounding.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import math
import operator
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gancr.errors import GancrError

__all__ = [
    "IMAGE_EXTENSIONS",
    "BUILTIN_PREFIX",
    "BUILTIN_SOURCES",
    "DataError",
    "DataWarning",
    "load_image",
    "load_alpha",
    "save_image",
    "resolve_source",
    "list_images",
    "describe_source",
    "builtin_source_names",
    "builtin_cache_dir",
    "cartoonize",
    "Cartoonize",
    "UnpairedImages",
    "DeviceAugment",
]

#: File extensions searched for in a folder (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

#: The prefix of a built-in source.
BUILTIN_PREFIX = "builtin:"

#: The built-in sources and what each holds.
BUILTIN_SOURCES: dict[str, str] = {
    "builtin:photos": "colour photographs from scikit-image (content domain of the demo)",
    "builtin:cartoon": "cartoonize() of other scikit-image photographs (style domain of the demo)",
    "builtin:holdout": "photographs kept out of photos and cartoon, for evaluation",
    "builtin:holdout_cartoon": "cartoonize() of exactly the builtin:holdout images (known target)",
}

Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


class DataError(GancrError, ValueError):
    """A user-facing data problem: a missing folder, no images, an unreadable file."""


class DataWarning(UserWarning):
    """An image that was skipped (unreadable), and how many were skipped in a source."""


# ---------------------------------------------------------------------------------------------
# reading and writing images
# ---------------------------------------------------------------------------------------------

_SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def _gray_to_rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[:, :, None], 3, axis=2)


def _scale_int(a: np.ndarray) -> np.ndarray:
    """Mode "I" (32-bit int): 16-bit data by 65535, anything else by its min-max range."""
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo >= 0 and hi <= 65535:
        return a.astype(np.float32) / 65535.0
    return (a.astype(np.float64) - lo) / max(hi - lo, 1)


def _scale_float(a: np.ndarray) -> np.ndarray:
    """Mode "F": values in [0, 1] as they are, else [0, 255] by 255, else min-max."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        return a
    if lo >= 0.0 and hi <= 255.0:
        return a / 255.0
    return (a - lo) / max(hi - lo, 1e-12)


def _pil_to_array(img) -> np.ndarray:
    """A PIL image of any common mode -> float (H, W, 3) in [0, 1]."""
    mode = img.mode
    if mode.startswith("I;16"):  # I;16, I;16L, I;16B, I;16N: scale by the 16-bit range
        return _gray_to_rgb(np.asarray(img).astype(np.float32) / 65535.0)
    if mode == "I":
        return _gray_to_rgb(_scale_int(np.asarray(img)))
    if mode == "F":
        return _gray_to_rgb(_scale_float(np.asarray(img)))
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[:, :, 3:]
        return rgba[:, :, :3] * alpha + (1.0 - alpha)  # composite over white
    if mode == "L":
        return _gray_to_rgb(np.asarray(img, dtype=np.float32) / 255.0)
    if mode != "RGB":  # 1, P, CMYK, YCbCr, HSV, ...
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def _decode(path: Path, min_side: int | None = None) -> Tensor:
    """Decode ``path`` to float32 (3, H, W); ``min_side`` lets JPEG decode at a reduced size."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            if min_side is not None and img.format == "JPEG":
                img.draft(None, (min_side, min_side))  # keeps both sides >= min_side
            img.load()
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # a broken EXIF block: keep the stored orientation
                pass
            array = _pil_to_array(img)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
        reason = str(e) or type(e).__name__
        raise DataError(f"cannot read image {path}: {reason}") from e
    array = np.clip(array, 0.0, 1.0).astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def load_image(path: str | os.PathLike) -> Tensor:
    """Read an image file as RGB.

    EXIF orientation is applied; grayscale, palette, CMYK, 16-bit and float images are
    converted to RGB (16-bit by the range 0..65535); transparent pixels are composited
    over white.

    Args:
        path: an image file.

    Returns:
        float32 tensor ``(3, H, W)`` in [0, 1].

    Raises:
        DataError: ``cannot read image <path>: <reason>`` for a missing, corrupt or
            truncated file.
    """
    return _decode(Path(path))


def load_alpha(path: str | os.PathLike) -> Tensor | None:
    """The transparency of an image as ``(1, H, W)`` in [0, 1] (EXIF-oriented), or None."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode not in ("RGBA", "LA", "PA") and not (img.mode in ("P", "RGB", "L") and "transparency" in img.info):
                return None
            alpha = np.asarray(img.convert("RGBA"), dtype=np.float32)[..., 3] / 255.0
    except Exception as e:  # noqa: BLE001 - same failures as load_image
        raise DataError(f"cannot read image {path}: {e or type(e).__name__}") from e
    return torch.from_numpy(np.ascontiguousarray(alpha))[None]


def save_image(tensor: Tensor, path: str | os.PathLike) -> Path:
    """Write an image atomically (a temporary file in the same folder, then ``os.replace``).

    Args:
        tensor: ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1] (values outside are clipped).
        path: the file; its extension picks the format (``.png``, ``.jpg``, ``.webp``, ...).
            Missing parent folders are created.

    Returns:
        the path written.
    """
    from PIL import Image

    path = Path(path)
    if not isinstance(tensor, Tensor):
        raise TypeError(f"save_image: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (3, 4):
        raise ValueError(
            f"save_image: expected a tensor of shape (3, H, W) or (1, 3, H, W) (or 4 channels, "
            f"RGBA), got {tuple(tensor.shape)} for {path}"
        )
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"cannot save image {path}: unsupported extension {path.suffix!r} "
            f"(use one of {', '.join(_SAVE_FORMATS)})"
        )
    x = tensor.detach().to("cpu", torch.float32).nan_to_num(0.0).clamp(0.0, 1.0)
    array = (x * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    img = Image.fromarray(array)  # RGB or RGBA by the channel count
    if img.mode == "RGBA" and fmt in ("JPEG", "BMP"):
        img = img.convert("RGB")  # these formats have no alpha channel
    options = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}}.get(fmt, {})

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format=fmt, **options)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# ---------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _no_images_message(where: object) -> str:
    exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    return f"no images ({exts}) found in {where}"


def _scan_folder(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, hidden entries skipped, sorted."""
    found: list[tuple[str, Path]] = []
    seen_dirs: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:  # a symlink loop
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or not _is_image_name(name):
                continue
            full = Path(root) / name
            if full.is_file():
                found.append((full.relative_to(folder).as_posix(), full))
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


def _resolve_one(item: str | os.PathLike) -> list[Path]:
    if isinstance(item, str) and item.startswith(BUILTIN_PREFIX):
        return _builtin_paths(item)
    if not isinstance(item, (str, os.PathLike)):
        raise TypeError(
            f"resolve_source: expected a folder, an image file, builtin:NAME or a list of "
            f"those, got {type(item).__name__}"
        )
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(item))))
    if path.is_dir():
        images = _scan_folder(path)
        if not images:
            raise DataError(_no_images_message(path))
        return images
    if path.is_file():
        if not _is_image_name(path.name):
            raise DataError(
                f"{path} is not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})"
            )
        return [path]
    raise DataError(f"image folder or file not found: {path}")


def resolve_source(source: Source) -> list[Path]:
    """The image files of a source.

    Args:
        source: a folder (searched recursively for :data:`IMAGE_EXTENSIONS`,
            case-insensitively, skipping hidden files and folders), an image file,
            ``builtin:NAME`` (see :data:`BUILTIN_SOURCES`), or a list of those.

    Returns:
        absolute paths, sorted within each folder, in the order the sources were given,
        without duplicates.

    Raises:
        DataError: a folder or file that does not exist, a folder without images, an
            unknown built-in name.
    """
    if isinstance(source, (str, os.PathLike)):
        items: list = [source]
    elif isinstance(source, Sequence):
        items = list(source)
        if not items:
            raise DataError("empty list of image sources")
    else:
        raise TypeError(
            f"resolve_source: expected a folder, an image file, builtin:NAME or a list of "
            f"those, got {type(source).__name__}"
        )
    out: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        for p in _resolve_one(item):
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


#: Alias of :func:`resolve_source`.
list_images = resolve_source


def _source_label(source: Source) -> str:
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        return source
    if isinstance(source, (str, os.PathLike)):
        return os.path.abspath(os.path.expanduser(os.fspath(source)))
    items = [_source_label(s) for s in source]
    if len(items) > 3:
        return f"{', '.join(items[:2])}, ... ({len(items)} sources)"
    return ", ".join(items)


def _count(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


def describe_source(source: Source) -> str:
    """A short description, e.g. ``"builtin:photos (4 images)"`` or ``"/data/x (12 images)"``."""
    return f"{_source_label(source)} ({_count(len(resolve_source(source)))})"


# ---------------------------------------------------------------------------------------------
# cartoonize
# ---------------------------------------------------------------------------------------------

# Parameters of cartoonize; part of the built-in data's version tag.
_CARTOON = {
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
    p = _CARTOON
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


# ---------------------------------------------------------------------------------------------
# built-in sources
# ---------------------------------------------------------------------------------------------

# name -> (skimage file names, cartoonized?)
_SPLIT: dict[str, tuple[tuple[str, ...], bool]] = {
    "photos": (("astronaut.png", "coffee.png", "hubble_deep_field.jpg", "retina.jpg"), False),
    "cartoon": (("motorcycle_left.png", "motorcycle_right.png", "ihc.png"), True),
    "holdout": (("chelsea.png", "rocket.jpg"), False),
    "holdout_cartoon": (("chelsea.png", "rocket.jpg"), True),
}
_BUILTIN_MAX_SIDE = 512
_BUILTIN_VERSION = 1
_BUILTIN_TAG = f"v{_BUILTIN_VERSION}-" + hashlib.sha256(
    repr((sorted(_SPLIT.items()), _BUILTIN_MAX_SIDE, sorted(_CARTOON.items()))).encode()
).hexdigest()[:8]


def builtin_source_names() -> tuple[str, ...]:
    """The built-in sources, as written in a spec: ``("builtin:photos", ...)``."""
    return tuple(BUILTIN_SOURCES)


def builtin_cache_dir() -> Path:
    """Where built-in images are written: ``$GANCR_CACHE_DIR`` (default ``~/.cache/gancr``)
    / ``builtin-<version tag>``."""
    root = os.environ.get("GANCR_CACHE_DIR") or os.path.join("~", ".cache", "gancr")
    return Path(os.path.abspath(os.path.expanduser(root))) / f"builtin-{_BUILTIN_TAG}"


def _skimage_data_dir(source: str) -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f'{source} needs scikit-image: pip install "gancr[data]"')
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _builtin_base(file: Path) -> Tensor:
    """A bundled photograph, shorter side at most 512, rounded to 8 bits."""
    x = load_image(file)
    h, w = x.shape[-2:]
    if min(h, w) > _BUILTIN_MAX_SIDE:
        x = _resize(x, _BUILTIN_MAX_SIDE / min(h, w))
    return (x.clamp(0.0, 1.0) * 255.0).round() / 255.0


def _builtin_paths(source: str) -> list[Path]:
    name = source[len(BUILTIN_PREFIX):]
    if name not in _SPLIT:
        close = difflib.get_close_matches(source, list(BUILTIN_SOURCES), n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise DataError(
            f"unknown built-in source {source!r}{hint}; available: {', '.join(BUILTIN_SOURCES)}"
        )
    files, cartoon = _SPLIT[name]
    folder = builtin_cache_dir() / name
    paths = [folder / f"{Path(f).stem}.png" for f in files]
    missing = [(f, p) for f, p in zip(files, paths) if not p.is_file()]
    if missing:
        data_dir = _skimage_data_dir(source)
        for f, p in missing:
            file = data_dir / f
            if not file.is_file():
                raise DataError(
                    f"{source}: scikit-image's bundled file {file} is missing; reinstall "
                    f'scikit-image (pip install "gancr[data]")'
                )
            x = _builtin_base(file)
            save_image(cartoonize(x) if cartoon else x, p)
    return paths


# ---------------------------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------------------------


def _resize(x: Tensor, scale: float = 1.0, size: tuple[int, int] | None = None) -> Tensor:
    """(3, H, W) float resized by ``scale`` (or to ``size``), antialiased bilinear."""
    h, w = x.shape[-2:]
    size = size or (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)
    return out[0]


def _load_resized(path: Path, load_size: int) -> Tensor:
    """uint8 (3, h, w) with the shorter side equal to ``load_size`` (antialiased bilinear)."""
    x = _decode(path, min_side=load_size)
    h, w = x.shape[-2:]
    if min(h, w) != load_size:
        x = _resize(x, load_size / min(h, w))
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def _generator(seed: int, k: int, domain: str) -> torch.Generator:
    digest = hashlib.blake2b(f"gancr.data:{seed}:{k}:{domain}".encode(), digest_size=8).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    return g


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (), generator=g))


def _crop_params(
    h: int, w: int, scale: tuple[float, float], g: torch.Generator
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop (torchvision's rule)."""
    area = h * w
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * _uniform(g, *scale)
        ratio = math.exp(_uniform(g, *log_ratio))
        cw = int(round(math.sqrt(target * ratio)))
        ch = int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return _randint(g, h - ch + 1), _randint(g, w - cw + 1), ch, cw
    # fallback: the largest centred crop with the ratio clamped to (3/4, 4/3)
    r = w / h
    if r < 3 / 4:
        cw, ch = w, int(round(w / (3 / 4)))
    elif r > 4 / 3:
        ch, cw = h, int(round(h * (4 / 3)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"UnpairedImages: {name} must be a positive int, got {value!r}")
    return value


class DeviceAugment(torch.nn.Module):
    """Random resized crop, flip and (style) hue rotation of uint8 batches, on their device.

    The counterpart of ``UnpairedImages(augment=False)``: the loader only decodes and
    copies uint8 squares (a quarter of the bytes of float32), and the augmentation runs
    where the training step runs, so the loader does not starve a fast device. Uses
    torch's global random generator (which checkpoints save and restore).

    Args:
        image_size: side of the output crops.
        crop_scale: range of the crop's area, as a fraction of the square.
        flip: flip horizontally with probability 0.5.
        hue: rotate the hue by up to this fraction of the colour circle (0 to 0.5).

    Shape:
        ``(B, 3, L, L)`` uint8 -> ``(B, 3, S, S)`` float32 in [0, 1].
    """

    def __init__(self, image_size: int, crop_scale: tuple[float, float] = (0.5, 1.0), flip: bool = True,
                 hue: float = 0.0):
        super().__init__()
        import kornia.augmentation as K

        ops: list[torch.nn.Module] = [
            K.RandomResizedCrop((image_size, image_size), scale=tuple(crop_scale), ratio=(3 / 4, 4 / 3))
        ]
        if flip:
            ops.append(K.RandomHorizontalFlip(p=0.5))
        if hue > 0:
            ops.append(K.ColorJiggle(hue=(-hue, hue), p=1.0))
        self.ops = torch.nn.Sequential(*ops)

    def forward(self, batch: Tensor) -> Tensor:
        x = batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()
        return self.ops(x).clamp_(0.0, 1.0)


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
        load_size: shorter side after loading; default ``round(1.125 * image_size)``.
        crop_scale: range of the crop's area as a fraction of the loaded image.
        flip: flip horizontally with probability 0.5.
        style_hue: rotate the hue of style samples by a uniform fraction of the colour
            circle in ``[-style_hue, style_hue]`` (0 to 0.5), so a discriminator judges a
            small style set by its look (flat areas, outlines, strokes) rather than its colours.
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
        crop_scale: tuple[float, float] = (0.5, 1.0),
        flip: bool = True,
        style_hue: float = 0.0,
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
        self.flip = bool(flip)
        if not 0.0 <= float(style_hue) <= 0.5:
            raise ValueError(f"UnpairedImages: style_hue must be in [0, 0.5], got {style_hue!r}")
        self.style_hue = float(style_hue)
        self.augment = bool(augment)
        self.seed = operator.index(seed)
        self.cache = bool(cache)

        self.content_source = _source_label(content)
        self.style_source = _source_label(style)
        self.content_paths, self._content_cache = self._validate(content, self.content_source)
        self.style_paths, self._style_cache = self._validate(style, self.style_source)

    def _validate(self, source: Source, label: str) -> tuple[list[Path], list[Tensor] | None]:
        paths = resolve_source(source)

        def attempt(p: Path) -> Tensor | DataError:
            try:
                return _load_resized(p, self.load_size)
            except DataError as e:
                return e

        workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
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
            raise DataError(f"no usable images in {label}: all {_count(len(paths))} are unreadable")
        return good, (images if self.cache else None)

    def __len__(self) -> int:
        return len(self.content_paths)

    def _sample(self, k: int, domain: str, paths: list[Path], cache: list[Tensor] | None) -> Tensor:
        g = _generator(self.seed, k, domain)
        index = _randint(g, len(paths))
        image = cache[index] if cache is not None else _load_resized(paths[index], self.load_size)
        h, w = image.shape[-2:]
        if not self.augment:  # the centred square; DeviceAugment does the rest
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            return image[:, top : top + side, left : left + side].contiguous()
        top, left, ch, cw = _crop_params(h, w, self.crop_scale, g)
        flip = float(torch.rand((), generator=g)) < 0.5  # drawn even without flip
        crop = image[:, top : top + ch, left : left + cw].to(torch.float32) / 255.0
        out = _resize(crop, size=(self.image_size, self.image_size))
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
        n_content, n_style = _count(len(self.content_paths)), _count(len(self.style_paths))
        return (
            f"{type(self).__name__}(content={self.content_source!r} ({n_content}), "
            f"style={self.style_source!r} ({n_style}), "
            f"image_size={self.image_size}, load_size={self.load_size}, seed={self.seed})"
        )
