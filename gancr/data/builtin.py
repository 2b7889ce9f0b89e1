"""Built-in sources that need no download: split from photographs bundled with scikit-image and matplotlib.

See :mod:`gancr.data` for the split; the files are written under :func:`builtin_cache_dir`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from gancr.data.cartoon import CARTOON_PARAMS, cartoonize
from gancr.data.image_files import load_image, save_image
from gancr.data.resize import resize
from gancr.errors import DataError

__all__ = [
    "BUILTIN_PREFIX", "BUILTIN_SOURCES", "BUNDLED_PHOTOS", "builtin_source_names", "builtin_cache_dir", "builtin_paths",
    "known_targets",
]

#: The prefix of a built-in source.
BUILTIN_PREFIX = "builtin:"

#: The built-in sources and what each holds.
BUILTIN_SOURCES: dict[str, str] = {
    "builtin:photos": "colour photographs from scikit-image (content domain of the demo)",
    "builtin:cartoon": "cartoonize() of the builtin:photos photographs (style domain of the demo; "
    "the trainer draws crops of the two independently, so it never sees a pair)",
    "builtin:holdout": "photographs kept out of photos and cartoon, for evaluation (one greyscale)",
    "builtin:holdout_cartoon": "cartoonize() of exactly the builtin:holdout images (known target)",
}

#: The bundled photographs: name -> (package, folder inside the package, file, licence).
BUNDLED_PHOTOS: dict[str, tuple[str, str, str, str]] = {
    "astronaut": ("skimage", "data", "astronaut.png", "NASA (Eileen Collins), public domain"),
    "coffee": ("skimage", "data", "coffee.png", "CC0, Rachel Michetti"),
    "hubble_deep_field": ("skimage", "data", "hubble_deep_field.jpg", "NASA, public domain"),
    "retina": ("skimage", "data", "retina.jpg", "CC0, Mikael Häggström (Wikimedia Commons)"),
    "motorcycle_left": ("skimage", "data", "motorcycle_left.png", "Middlebury stereo data set, free for research"),
    "motorcycle_right": ("skimage", "data", "motorcycle_right.png", "Middlebury stereo data set, free for research"),
    "ihc": ("skimage", "data", "ihc.png", "CMMI, no known copyright restrictions"),
    "chelsea": ("skimage", "data", "chelsea.png", "CC0, Stefan van der Walt"),
    "rocket": ("skimage", "data", "rocket.jpg", "SpaceX, public domain"),
    "camera": ("skimage", "data", "camera.png", "CC0, Lav Varshney (greyscale)"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data", "grace_hopper.jpg", "US Navy, public domain"),
}

#: The training photographs, both domains: the style domain is their cartoon, so the two
#: domains differ in style only. With different scenes in each (space and a retina against a
#: motorcycle, in version 2) a discriminator tells them apart by their content, and the
#: generator learned to repaint the dark areas of photographs instead of the cartoon.
_TRAINING = ("astronaut", "coffee", "hubble_deep_field", "retina", "motorcycle_left", "motorcycle_right", "ihc")

#: The built-in sets: name -> (photographs, cartoonized?).
_SPLIT: dict[str, tuple[tuple[str, ...], bool]] = {
    "photos": (_TRAINING, False),
    "cartoon": (_TRAINING, True),
    "holdout": (("chelsea", "rocket", "grace_hopper", "camera"), False),
    "holdout_cartoon": (("chelsea", "rocket", "grace_hopper", "camera"), True),
}
_BUILTIN_MAX_SIDE = 512
_BUILTIN_VERSION = 3
_BUILTIN_TAG = f"v{_BUILTIN_VERSION}-" + hashlib.sha256(
    repr((sorted(_SPLIT.items()), _BUILTIN_MAX_SIDE, sorted(CARTOON_PARAMS.items()))).encode()
).hexdigest()[:8]


def builtin_source_names() -> tuple[str, ...]:
    """The built-in sources, as written in a spec: ``("builtin:photos", ...)``."""
    return tuple(BUILTIN_SOURCES)


def builtin_cache_dir() -> Path:
    """Where built-in images are written: ``$GANCR_CACHE_DIR`` (default ``~/.cache/gancr``)
    / ``builtin-<version tag>``."""
    root = os.environ.get("GANCR_CACHE_DIR") or os.path.join("~", ".cache", "gancr")
    return Path(os.path.abspath(os.path.expanduser(root))) / f"builtin-{_BUILTIN_TAG}"


def _bundled_file(name: str, source: str) -> Path:
    """The file of a bundled photograph, inside its installed package (never downloaded)."""
    package, folder, file, _ = BUNDLED_PHOTOS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f'{source} needs the package {package}: pip install "gancr[data]"')
    path = Path(list(spec.submodule_search_locations)[0]) / folder / file
    if not path.is_file():
        raise DataError(f'{source}: {package}\'s bundled file {path} is missing; reinstall it (pip install "gancr[data]")')
    return path


def _builtin_base(file: Path) -> Tensor:
    """A bundled photograph, shorter side at most 512, rounded to 8 bits."""
    x = load_image(file)
    h, w = x.shape[-2:]
    if min(h, w) > _BUILTIN_MAX_SIDE:
        x = resize(x, scale=_BUILTIN_MAX_SIDE / min(h, w))
    return (x.clamp(0.0, 1.0) * 255.0).round() / 255.0


def builtin_paths(source: str) -> list[Path]:
    """The files of ``builtin:NAME``, written to the cache on first use."""
    name = source[len(BUILTIN_PREFIX):]
    if name not in _SPLIT:
        close = difflib.get_close_matches(source, list(BUILTIN_SOURCES), n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise DataError(
            f"unknown built-in source {source!r}{hint}; available: {', '.join(BUILTIN_SOURCES)}"
        )
    names, cartoon = _SPLIT[name]
    folder = builtin_cache_dir() / name
    paths = [folder / f"{n}.png" for n in names]
    for n, p in zip(names, paths):
        if not p.is_file():
            x = _builtin_base(_bundled_file(n, source))
            save_image(cartoonize(x) if cartoon else x, p)
    return paths


def known_targets(images: Sequence[Path], folder: Path) -> list[Path]:
    """:func:`cartoonize` of each image, prepared as the built-in sets are, into ``folder``.

    The known target of ``gancr bench quality --holdout DIR``: each image's shorter side is
    brought to at most 512 pixels and rounded to 8 bits (like ``builtin:holdout``), then
    cartoonized and written as ``folder/<stem>.png``. Returns the written paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for image in images:
        target = folder / f"{Path(image).stem}.png"
        save_image(cartoonize(_builtin_base(Path(image))), target)
        out.append(target)
    return out
