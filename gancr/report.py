"""Deprecated: ``gancr.report`` is :mod:`gancr.evaluation.report` (gancr 0.1). Removed in the next release."""

from __future__ import annotations

import warnings

from gancr.evaluation.report import MAX_SAMPLES, ReportError, read_metrics, write_report

__all__ = ["write_report", "read_metrics", "ReportError", "MAX_SAMPLES"]

warnings.warn(
    "gancr.report moved to gancr.evaluation.report; the old module goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
