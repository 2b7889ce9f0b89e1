"""Reading and writing image files: any common mode to RGB float tensors, atomic writes.
(Resizing is :mod:`gancr.data.resize`.)"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gancr.errors import DataError
from gancr.storage.files import atomic_write_bytes

__all__ = ["load_image", "load_alpha", "save_image", "decode_image"]


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


def decode_image(path: Path, min_side: int | None = None) -> Tensor:
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
    return decode_image(Path(path))


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
    """Write an image atomically (a temporary file in the same folder, then a rename; :mod:`gancr.storage.files`).

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

    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return atomic_write_bytes(path, buffer.getvalue())
