"""Deprecated: ``gancr.tiling`` is :mod:`gancr.inference.tiling` (gancr 0.1). Removed in the next release."""

from gancr._deprecated import warn_moved
from gancr.inference.tiling import *  # noqa: F403
from gancr.inference.tiling import __all__  # noqa: F401

warn_moved("gancr.tiling", "gancr.inference.tiling")
