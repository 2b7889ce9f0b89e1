"""The ``gancr`` command (:func:`main`), one module per command group (see :mod:`gancr.cli.main`)."""

from __future__ import annotations

from typing import Any

from gancr.cli.main import COMMANDS, EXIT_USAGE, build_parser, main

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_USAGE"]


def summarize_spec(spec: Any) -> str:
    """Deprecated: ``spec.summary()`` (:meth:`gancr.spec.Spec.summary`)."""
    import warnings

    warnings.warn("gancr.cli.summarize_spec(spec) is deprecated; use spec.summary()", DeprecationWarning, stacklevel=2)
    return spec.summary()
