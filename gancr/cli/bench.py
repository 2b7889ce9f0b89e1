"""``gancr bench BENCHMARK``: each benchmark of :data:`gancr.bench.BENCHMARKS` with its own options
(looked up when the parser is built, so a benchmark added to the list is a command at once)."""

from __future__ import annotations

import argparse
from typing import Any

from gancr import bench
from gancr.cli.output import add_output_options

__all__ = ["add_bench", "cmd_bench"]


def add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks: " + ", ".join(name for name, *_ in bench.BENCHMARKS),
                       description="Benchmarks. Run `gancr bench BENCHMARK --help` for each one's options.")
    bench_sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, help_text, add_arguments, _ in bench.BENCHMARKS:
        leaf = bench_sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(leaf)
        add_output_options(leaf)
    p.set_defaults(_bench_parser=p)


def cmd_bench(args: argparse.Namespace) -> int:
    runs = {name: run for name, _, _, run in bench.BENCHMARKS}
    if not getattr(args, "benchmark", None):
        args._bench_parser.print_help()
        return 2
    return runs[args.benchmark](args)
