"""How much every command prints: ``-q/--quiet`` and ``-v/--verbose``, and warnings as ``gancr: warning: ...``.

=========  ==========================================================================
level      what is printed besides a command's results and its errors
=========  ==========================================================================
``-qq``    nothing
``-q``     warnings (no progress, no notes)
(default)  warnings, notes and progress (a bar on a terminal, plain lines otherwise)
``-v``     the same, every warning (each time) with its category and source line, errors with their traceback
=========  ==========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["add_output_options", "output_level", "notes_enabled", "note", "warnings_shown_as_gancr"]


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` (each repeatable), as ``args.quiet`` and ``args.verbose``."""
    group = parser.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="count", default=0,
                       help="less output: no progress or notes (-qq: no warnings either)")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more output: warnings with their source, errors with their traceback")


def output_level(args: argparse.Namespace) -> int:
    """-2 (``-qq``), -1 (``-q``), 0 (default), 1 or more (``-v``)."""
    return int(getattr(args, "verbose", 0) or 0) - int(getattr(args, "quiet", 0) or 0)


def notes_enabled(args: argparse.Namespace) -> bool:
    """Whether progress and informational notes are shown (not with ``-q``)."""
    return output_level(args) >= 0


def note(args: argparse.Namespace, text: str) -> None:
    """An informational line on standard error, unless ``-q``."""
    if notes_enabled(args):
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def warnings_shown_as_gancr(level: int) -> Iterator[None]:
    """Within the block, a warning prints as one line ``gancr: warning: MESSAGE`` (no source line);
    with ``level >= 1`` its category and where it was raised follow; with ``level <= -2`` none print."""

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        text = str(message).strip()
        if level >= 1:
            text += f" [{category.__name__} at {filename}:{lineno}]"
        print(f"gancr: warning: {text}", file=file if file is not None else sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        if level <= -2:
            warnings.simplefilter("ignore")
        elif level >= 1:
            warnings.simplefilter("always")  # every warning, each time, deprecations included
        yield
