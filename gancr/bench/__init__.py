"""``gancr bench``: benchmarks, each a sub-subcommand (``gancr bench quality``, ``gancr bench speed``).

A benchmark is one entry of :data:`BENCHMARKS`: ``(name, help, add_arguments, run)``, where
``add_arguments(parser)`` adds its options to its own ``argparse`` parser and ``run(args)``
returns the exit status. Adding one is a one-line edit of that list; keep its module cheap to
import (no torch at module level), since ``gancr --help`` builds every parser.

- :mod:`~gancr.bench.quality`: the known-target quality benchmark;
- :mod:`~gancr.bench.speed`: the training step against a hand-written PyTorch reference;
- :mod:`~gancr.bench.painting`: a painting recipe against identity and Gatys' per-image optimisation;
- :mod:`~gancr.bench.timing`: synchronised timings, operator and FLOP counts (imports torch).
- :mod:`~gancr.bench.figures`: docs/performance.md's tables from the speed runs' JSON files.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gancr.bench import painting, quality, speed

__all__ = ["BENCHMARKS"]

#: The benchmarks of ``gancr bench``: (name, help, add_arguments(parser), run(args) -> exit status).
BENCHMARKS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = [
    ("quality", "known-target quality: train gancr's spec and a baseline, score G(x) against true cartoons",
     quality.add_arguments, quality.run),
    ("speed", "training-step speed against a hand-written PyTorch reference, and inference latency",
     speed.add_arguments, speed.run),
    ("painting", "a painting recipe beside doing nothing and per-image optimisation (Gatys), scored alike",
     painting.add_arguments, painting.run),
]
