"""Deprecated: ``gancr.export`` is :mod:`gancr.inference.export` (gancr 0.1). Removed in the next release."""

from gancr._deprecated import warn_moved
from gancr.inference.export import *  # noqa: F403
from gancr.inference.export import __all__  # noqa: F401

warn_moved("gancr.export", "gancr.inference.export")
