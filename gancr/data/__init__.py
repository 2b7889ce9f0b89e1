"""Unpaired image data for training, and built-in demo data that needs no download.

A *source* is what :func:`resolve_source` takes: a folder (searched recursively), a single
image file, a list of those, or a built-in source ``builtin:NAME``. :class:`UnpairedImages`
draws a content image and a style image for every sample number; each sample is a pure
function of ``(seed, k)``, so training resumes at any step with bit-identical data.

Built-in sources
----------------
Made from the photographs bundled inside scikit-image (``skimage/data/``) and matplotlib
(``mpl-data/sample_data/``), read by path; nothing is ever downloaded. No held-out
photograph, and no near-duplicate of one, is in a training set:

================================  ==============================================================
``builtin:photos``                astronaut, coffee, hubble_deep_field, retina, motorcycle_left,
                                  motorcycle_right, ihc (content domain)
``builtin:cartoon``               :func:`cartoonize` of the same seven (style domain: the two
                                  domains differ in style only; crops of each are drawn
                                  independently, so training never sees a pair)
``builtin:holdout``               chelsea, rocket, grace_hopper (matplotlib), camera (greyscale):
                                  kept out of both, for evaluation
``builtin:holdout_cartoon``       :func:`cartoonize` of exactly the ``builtin:holdout`` images,
                                  same order and file stems (the known target of a benchmark)
================================  ==============================================================

:data:`~gancr.data.builtin.BUNDLED_PHOTOS` gives each photograph's package, file and licence
(all public domain, CC0 or free for research).

Every built-in image is first resized (antialiased) so that its shorter side is at most
512 pixels and rounded to 8 bits, then written as PNG under ``$GANCR_CACHE_DIR`` (default
``~/.cache/gancr``) in a folder whose name carries a version tag of the split and of the
cartoon algorithm, so changing either rebuilds the files. Hence
``cartoonize(load_image(holdout))`` equals ``load_image(holdout_cartoon)`` up to 8-bit rounding.
:func:`~gancr.data.builtin.known_targets` prepares any other photographs the same way.
"""

from gancr.data.builtin import (
    BUILTIN_PREFIX,
    BUILTIN_SOURCES,
    BUNDLED_PHOTOS,
    builtin_cache_dir,
    builtin_source_names,
    known_targets,
)
from gancr.data.cartoon import Cartoonize, cartoonize
from gancr.data.dataset import DataWarning, DeviceAugment, UnpairedImages
from gancr.data.image_files import load_alpha, load_image, save_image
from gancr.data.sources import IMAGE_EXTENSIONS, describe_source, is_image_name, resolve_source, source_label
from gancr.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "BUILTIN_PREFIX",
    "BUILTIN_SOURCES",
    "BUNDLED_PHOTOS",
    "known_targets",
    "DataError",
    "DataWarning",
    "load_image",
    "load_alpha",
    "save_image",
    "resolve_source",
    "describe_source",
    "source_label",
    "is_image_name",
    "builtin_source_names",
    "builtin_cache_dir",
    "cartoonize",
    "Cartoonize",
    "UnpairedImages",
    "DeviceAugment",
]
