"""Sources of images: folders (searched recursively), files, ``builtin:NAME``, lists of those."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from gancr.data.builtin import BUILTIN_PREFIX, builtin_paths
from gancr.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Source",
    "resolve_source",
    "describe_source",
    "source_label",
    "is_image_name",
    "count_images",
]

#: File extensions searched for in a folder (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def is_image_name(name: str) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTENSIONS` (in any case)."""
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
            if name.startswith(".") or not is_image_name(name):
                continue
            full = Path(root) / name
            if full.is_file():
                found.append((full.relative_to(folder).as_posix(), full))
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


def _resolve_one(item: str | os.PathLike) -> list[Path]:
    if isinstance(item, str) and item.startswith(BUILTIN_PREFIX):
        return builtin_paths(item)
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
        if not is_image_name(path.name):
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


def source_label(source: Source) -> str:
    """How a source is named in messages: ``builtin:NAME``, an absolute path, or a short list."""
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        return source
    if isinstance(source, (str, os.PathLike)):
        return os.path.abspath(os.path.expanduser(os.fspath(source)))
    items = [source_label(s) for s in source]
    if len(items) > 3:
        return f"{', '.join(items[:2])}, ... ({len(items)} sources)"
    return ", ".join(items)


def count_images(n: int) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} image{'s' if n != 1 else ''}"


def describe_source(source: Source) -> str:
    """A short description, e.g. ``"builtin:photos (4 images)"`` or ``"/data/x (12 images)"``."""
    return f"{source_label(source)} ({count_images(len(resolve_source(source)))})"


