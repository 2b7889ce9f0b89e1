"""Built-in sources that need no download: split from the photographs bundled with scikit-image.

See :mod:`gancr.data` for the split; the files are written under :func:`builtin_cache_dir`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
from pathlib import Path

from torch import Tensor

from gancr.data.cartoon import CARTOON_PARAMS, cartoonize
from gancr.data.images import load_image, resize_image, save_image
from gancr.errors import DataError

__all__ = ["BUILTIN_PREFIX", "BUILTIN_SOURCES", "builtin_source_names", "builtin_cache_dir", "builtin_paths"]

#: The prefix of a built-in source.
BUILTIN_PREFIX = "builtin:"

#: The built-in sources and what each holds.
BUILTIN_SOURCES: dict[str, str] = {
    "builtin:photos": "colour photographs from scikit-image (content domain of the demo)",
    "builtin:cartoon": "cartoonize() of other scikit-image photographs (style domain of the demo)",
    "builtin:holdout": "photographs kept out of photos and cartoon, for evaluation",
    "builtin:holdout_cartoon": "cartoonize() of exactly the builtin:holdout images (known target)",
}

_SPLIT: dict[str, tuple[tuple[str, ...], bool]] = {
    "photos": (("astronaut.png", "coffee.png", "hubble_deep_field.jpg", "retina.jpg"), False),
    "cartoon": (("motorcycle_left.png", "motorcycle_right.png", "ihc.png"), True),
    "holdout": (("chelsea.png", "rocket.jpg"), False),
    "holdout_cartoon": (("chelsea.png", "rocket.jpg"), True),
}
_BUILTIN_MAX_SIDE = 512
_BUILTIN_VERSION = 1
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
        x = resize_image(x, _BUILTIN_MAX_SIDE / min(h, w))
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


