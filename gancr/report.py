"""Deprecated: ``gancr.report`` is :mod:`gancr.evaluation.report` (gancr 0.1). Removed in the next release."""

from gancr._deprecated import warn_moved
from gancr.evaluation.report import *  # noqa: F403
from gancr.evaluation.report import __all__  # noqa: F401

warn_moved("gancr.report", "gancr.evaluation.report")
