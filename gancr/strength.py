"""Deprecated: ``gancr.strength`` is :mod:`gancr.inference.strength` (gancr 0.1). Removed in the next release."""

from gancr._deprecated import warn_moved
from gancr.inference.strength import *  # noqa: F403
from gancr.inference.strength import __all__  # noqa: F401

warn_moved("gancr.strength", "gancr.inference.strength")
