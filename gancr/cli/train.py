"""``gancr train``: two-stage training of a spec's trio into a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gancr.cli.output import notes_enabled
from gancr.cli.spec import add_spec_arguments, positive_int
from gancr.errors import GancrError
from gancr.storage.files import output_argument

__all__ = ["add_train", "cmd_train"]


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train the trio of a spec (two-stage multi-task training)")
    add_spec_arguments(p)
    output_argument(p, "--out", folder=True, required=True, help="the run directory")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --out that holds another run, deleting that run's files")
    p.add_argument("--max-steps", type=positive_int, default=None, metavar="N",
                   help="stop after this global step (with a checkpoint)")


def _demo_inputs(spec: Any) -> list[Path]:
    """Photographs to stylise after training: every held-out one for the built-in demo, else two."""
    from gancr.data import resolve_source

    builtin = spec.data.content == "builtin:photos"
    try:
        paths = resolve_source("builtin:holdout" if builtin else spec.data.content)
    except GancrError:
        return []
    return paths if builtin else paths[:2]


def cmd_train(args: argparse.Namespace) -> int:
    import signal
    import time

    from gancr.spec.requirements import check_requirements
    from gancr.spec import load_spec
    from gancr.training import Trainer

    spec = load_spec(args.specs if len(args.specs) > 1 else args.specs[0], args.overrides)
    check_requirements(spec)
    start = time.perf_counter()
    trainer = Trainer(spec, args.out, resume=args.resume, overwrite=args.overwrite, max_steps=args.max_steps,
                      quiet=not notes_enabled(args))
    try:
        if trainer.resumed_from is not None and trainer.dist.is_main:
            print(f"resuming from {trainer.resumed_from} (step {trainer.step})")
        result = trainer.fit()
    finally:
        trainer.dist.shutdown()
    # interrupted by a signal: exit as a process killed by it is expected to (130 for Ctrl-C, 143 for SIGTERM)
    interrupted = 128 + (result.signal or signal.SIGINT)
    if not trainer.dist.is_main:  # under torchrun, rank 0 reports
        return interrupted if result.status == "interrupted" else 0
    elapsed = time.perf_counter() - start
    run = trainer.run
    if result.status == "interrupted":
        print(f"interrupted at step {result.step}; checkpoint {result.checkpoint}. "
              f"Continue with: gancr train {run.spec_file} --out {args.out} --resume", file=sys.stderr)
        return interrupted
    if result.status == "max_steps":
        print(f"stopped at step {result.step} of {trainer.total_steps} (--max-steps); checkpoint "
              f"{result.checkpoint}. Continue with: gancr train {run.spec_file} --out {args.out} --resume")
        return 0
    from gancr.inference import stylize

    demo = _demo_inputs(spec)
    written: list[Path] = []
    if demo:  # a demo, after the run: an image it cannot read or write is a warning, not a failed run
        try:
            written = stylize(demo, generator=trainer.inference_generator().eval(), out_dir=run.stylized_dir,
                              skip_unreadable=True)
        except GancrError as exc:
            print(f"gancr train: warning: no demo stylisation: {exc}", file=sys.stderr)
    samples = run.samples()
    print(f"trained {result.step} steps in {elapsed:.0f} s.")
    if samples:
        print(f"  sample grids (input | content-net reconstruction | stylised): {samples[-1]}")
    for path in written:
        print(f"  stylised image: {path}")
    print(f"  generator: {result.generator}")
    print(f"Look at {run.stylized_dir} and {run.samples_dir}; stylise your own photos with:")
    print(f"  gancr stylize --checkpoint {args.out} photo.jpg --out stylized/")
    return 0
