"""The ``gancr`` command: the parser of every subcommand, and running one.

Each command group is a module of :mod:`gancr.cli` that owns its arguments: ``add_<name>(subparsers)``
adds a subcommand's parser, ``cmd_<name>(args)`` runs it. They import torch and the rest of
gancr inside the ``cmd_`` functions, so ``gancr --help`` stays fast.

User mistakes (``GancrError``), files that cannot be read or written (``OSError``) and memory
that runs out print a message and exit with status 2, never a traceback (``-v`` adds it).
Every command takes ``-q/--quiet`` and ``-v/--verbose`` (:mod:`gancr.cli.output`), and prints
warnings as ``gancr: warning: ...``. Every command's output paths are checked before it starts
(:func:`gancr.storage.files.check_outputs`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gancr import __version__
from gancr.cli.bench import add_bench, cmd_bench
from gancr.cli.components import add_components, add_describe, cmd_components, cmd_describe
from gancr.cli.completion import add_completion, cmd_completion
from gancr.cli.evaluation import add_eval, add_report, cmd_eval, cmd_report
from gancr.cli.inference import add_export, add_stylize, cmd_export, cmd_stylize
from gancr.cli.output import add_output_options, output_level, warnings_shown_as_gancr
from gancr.cli.plugins import add_new_plugin, cmd_new_plugin
from gancr.cli.spec import add_schema, add_validate, cmd_schema, cmd_validate
from gancr.cli.train import add_train, cmd_train
from gancr.errors import GancrError, SpecError
from gancr.storage.files import check_outputs

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_USAGE"]

EXIT_USAGE = 2


#: (name, add-parser function, command function) for every subcommand, in help order.
COMMANDS: list[tuple[str, Callable[[Any], None], Callable[[argparse.Namespace], int]]] = [
    ("components", add_components, cmd_components),
    ("describe", add_describe, cmd_describe),
    ("validate", add_validate, cmd_validate),
    ("schema", add_schema, cmd_schema),
    ("train", add_train, cmd_train),
    ("stylize", add_stylize, cmd_stylize),
    ("export", add_export, cmd_export),
    ("new-plugin", add_new_plugin, cmd_new_plugin),
    ("eval", add_eval, cmd_eval),
    ("bench", add_bench, cmd_bench),
    ("report", add_report, cmd_report),
    ("completion", add_completion, cmd_completion),
]

#: Commands that are groups of subcommands: their subcommands take -q/-v, not the group.
GROUPS = {"bench"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gancr",
        description="GAN-based image style transfer that keeps the content of the input image.",
    )
    parser.add_argument("--version", action="version", version=f"gancr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add, _ in COMMANDS:
        add(sub)
        if name not in GROUPS:
            add_output_options(sub.choices[name])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    autocomplete(parser)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    command = {name: fn for name, _, fn in COMMANDS}[args.command]
    level = output_level(args)
    try:
        with warnings_shown_as_gancr(level):
            check_outputs(args)  # every command's output paths, before any work
            return command(args)
    except SpecError as exc:
        _traceback(level)
        print(f"gancr {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GancrError as exc:
        _traceback(level)
        print(f"gancr {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"gancr {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file the command reads or writes: never a traceback
        _traceback(level)
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"gancr {args.command}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except (MemoryError, RuntimeError) as exc:
        from gancr.devices import is_allocation_error

        if not is_allocation_error(exc):
            raise
        _traceback(level)
        print(f"gancr {args.command}: error: not enough memory ({type(exc).__name__}); use smaller images, "
              "batches or models, or --tile SIZE for big photos", file=sys.stderr)
        return EXIT_USAGE


def _traceback(level: int) -> None:
    """With ``-v``, the traceback of the error being handled (for a bug report)."""
    if level >= 1:
        import traceback

        traceback.print_exc(file=sys.stderr)


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request (argcomplete's protocol) and exit; else do nothing.

    Only when the shell asked (``_ARGCOMPLETE`` is set), so a normal start imports nothing more.
    """
    import os

    if "_ARGCOMPLETE" in os.environ:
        import argcomplete

        argcomplete.autocomplete(parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
