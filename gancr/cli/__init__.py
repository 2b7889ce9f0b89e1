"""The ``gancr`` command (:func:`main`), one module per command group (see :mod:`gancr.cli.main`)."""

from __future__ import annotations

from gancr.cli.main import COMMANDS, EXIT_USAGE, build_parser, main

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_USAGE"]

