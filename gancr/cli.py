"""The ``gancr`` command. Each subcommand is a pair: ``_add_<name>(subparsers)`` and ``cmd_<name>(args)``.

User mistakes (``GancrError``) print a message and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

from gancr import __version__
from gancr.errors import GancrError, SpecError
from gancr.scaffold import _add_new_plugin, cmd_new_plugin
from gancr.bench import _add_bench, cmd_bench
from gancr.evaluation import _add_eval, cmd_eval
from gancr.report import _add_report, cmd_report

__all__ = ["main", "build_parser", "summarize_spec"]

EXIT_USAGE = 2


def _print_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    cols = list(zip(*([header] + [list(r) for r in rows]))) if rows else [[h] for h in header]
    widths = [max(len(str(c)) for c in col) for col in cols]
    widths[-1] = 0  # the last column runs free
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header).rstrip())
    for row in rows:
        print(fmt.format(*row).rstrip())


# ----------------------------------------------------------------------------------------
# components, describe, validate, schema
# ----------------------------------------------------------------------------------------


def _add_components(sub: Any) -> None:
    p = sub.add_parser("components", help="list the registered components (of one kind)")
    p.add_argument("kind", nargs="?", help="encoder, neck, decoder, discriminator, content_loss, style_loss or balancer")
    p.add_argument("--pattern", default="*", help="wildcard filter on names, e.g. 'vgg*'")
    p.add_argument("--markdown", action="store_true", help="print the docs' component catalogue")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_components(args: argparse.Namespace) -> int:
    from gancr.catalog import component_rows, markdown_catalog
    from gancr.plugins import get_registry, plugin_failures

    registry = get_registry()
    if args.markdown:
        print(markdown_catalog(registry), end="")
        return 0
    rows = component_rows(registry, args.kind, args.pattern)
    if args.json:
        print(json.dumps([dict(zip(("kind", "name", "plugin", "summary"), r)) for r in rows], indent=2))
        return 0
    _print_table(rows, ("KIND", "NAME", "PLUGIN", "SUMMARY"))
    failures = plugin_failures()
    if failures:
        print(f"\n{len(failures)} plugin(s) left out:", file=sys.stderr)
        for message in failures.values():
            print(f"  {message}", file=sys.stderr)
    return 0


def _add_describe(sub: Any) -> None:
    p = sub.add_parser("describe", help="a component's parameters, types, defaults and documentation")
    p.add_argument("kind")
    p.add_argument("name")


def cmd_describe(args: argparse.Namespace) -> int:
    from gancr.catalog import describe_entry
    from gancr.plugins import get_registry

    registry = get_registry()
    print(describe_entry(registry, registry.get(args.kind, args.name)))
    return 0


def summarize_spec(spec: Any) -> str:
    """Deprecated: ``spec.summary()`` (:meth:`gancr.spec.Spec.summary`)."""
    import warnings

    warnings.warn("gancr.cli.summarize_spec(spec) is deprecated; use spec.summary()", DeprecationWarning, stacklevel=2)
    return spec.summary()


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
        help="override a spec field, e.g. training.stages.0.steps=5 (repeatable)",
    )


def _add_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a spec: exit 0 and a summary, or exit 2 and the errors by path")
    p.add_argument("spec")
    _add_set(p)
    p.add_argument("--no-build", action="store_true", help="check the spec only, do not build the trio")


def cmd_validate(args: argparse.Namespace) -> int:
    from gancr.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    from gancr.requirements import check_requirements

    check_requirements(spec)
    parameters = ""
    if not args.no_build:
        from gancr.builder import build

        trio = build(spec)
        n = sum(p.numel() for p in trio.generator.parameters())
        parameters = f"; generator {n / 1e6:.2f}M parameters"
    print(f"{args.spec}: valid. {spec.summary()}{parameters}")
    return 0


def _add_schema(sub: Any) -> None:
    p = sub.add_parser("schema", help="the JSON Schema of a spec (plugin components included)")
    p.add_argument("--out", help="write to this file instead of standard output")


def cmd_schema(args: argparse.Namespace) -> int:
    from gancr.spec import Spec

    schema = Spec.model_json_schema()
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    schema["title"] = "gancr spec"  # pydantic's would be the class name, "Spec"
    text = json.dumps(schema, indent=2)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote the spec schema to {args.out}")
    else:
        print(text)
    return 0


# ----------------------------------------------------------------------------------------
# train, stylize
# ----------------------------------------------------------------------------------------


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train the trio of a spec (two-stage multi-task training)")
    p.add_argument("spec", help="a YAML or JSON spec")
    p.add_argument("--out", required=True, help="the run directory")
    _add_set(p)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this global step (with a checkpoint)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _demo_inputs(spec: Any) -> list[Path]:
    """A few photographs to stylise after training: held-out ones for the built-in demo."""
    from gancr.data import resolve_source

    content = spec.data.content
    source = "builtin:holdout" if content == "builtin:photos" else content
    try:
        return resolve_source(source)[:2]
    except GancrError:
        return []


def cmd_train(args: argparse.Namespace) -> int:
    import time

    from gancr.requirements import check_requirements
    from gancr.spec import load_spec
    from gancr.training import Trainer

    spec = load_spec(args.spec, args.overrides)
    check_requirements(spec)
    start = time.perf_counter()
    trainer = Trainer(spec, args.out, resume=args.resume, max_steps=args.max_steps, quiet=args.quiet)
    try:
        if trainer.resumed_from is not None and trainer.dist.is_main:
            print(f"resuming from {trainer.resumed_from} (step {trainer.step})")
        result = trainer.fit()
    finally:
        trainer.dist.shutdown()
    if not trainer.dist.is_main:  # under torchrun, rank 0 reports
        return 130 if result.status == "interrupted" else 0
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    if result.status == "interrupted":
        print(f"interrupted at step {result.step}; checkpoint {result.checkpoint}. "
              f"Continue with: gancr train {out / 'spec.yaml'} --out {args.out} --resume", file=sys.stderr)
        return 130
    if result.status == "max_steps":
        print(f"stopped at step {result.step} of {trainer.total_steps} (--max-steps); checkpoint "
              f"{result.checkpoint}. Continue with: gancr train {out / 'spec.yaml'} --out {args.out} --resume")
        return 0
    from gancr.inference import stylize

    demo = _demo_inputs(spec)
    written = stylize(demo, generator=trainer.inference_generator().eval(), out_dir=out / "stylized") if demo else []
    samples = sorted((out / "samples").glob("*.png"))
    print(f"trained {result.step} steps in {elapsed:.0f} s.")
    if samples:
        print(f"  sample grids (input | content-net reconstruction | stylised): {samples[-1]}")
    for path in written:
        print(f"  stylised image: {path}")
    print(f"  generator: {result.generator}")
    print(f"Look at {out / 'stylized'} and {out / 'samples'}; stylise your own photos with:")
    print(f"  gancr stylize --checkpoint {args.out} photo.jpg --out stylized/")
    return 0


def _add_stylize(sub: Any) -> None:
    p = sub.add_parser("stylize", help="stylise images or folders with a trained generator")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--checkpoint", required=True, help="a run directory, generator.safetensors or checkpoint")
    p.add_argument("--out", required=True, help="output folder (PNG files)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="use the EMA weights when the run kept them (default: yes)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: on CUDA the faster of fp32 and bf16 for this model, measured; fp32 on the CPU")
    p.add_argument("--alpha", type=float, default=1.0, metavar="A",
                   help="strength: 0 = the content net's reconstruction, 1 = full style (default)")
    p.add_argument("--tile", type=int, default=None, metavar="SIZE",
                   help="stylise in overlapping tiles of SIZE pixels (bounded memory for big photos)")
    p.add_argument("--overlap", type=int, default=None, metavar="PX",
                   help="least overlap between tiles (default: SIZE/8, at least 32, at most SIZE/4)")
    p.add_argument("--stats-tiles", type=int, default=None, metavar="N",
                   help="with --tile: estimate instance/group-norm statistics from N tiles spread over "
                        "the image (faster, approximate; default: all tiles, exact)")


def cmd_stylize(args: argparse.Namespace) -> int:
    from gancr.inference import load_generator, stylize
    from gancr.strength import alpha_plan, check_alpha, load_alpha_reference
    from gancr.devices import resolve_device

    alpha = check_alpha(args.alpha)
    if args.tile is None and (args.overlap is not None or args.stats_tiles is not None):
        raise GancrError("--overlap and --stats-tiles go with --tile SIZE")
    device = resolve_device(args.device)
    generator = load_generator(args.checkpoint, ema=args.ema, device=device)
    reference = None
    if alpha < 1.0:
        reference = load_alpha_reference(args.checkpoint, device=device)
        print(alpha_plan(generator, reference).describe(alpha), file=sys.stderr)
    if args.tile is not None:
        from gancr.tiling import DEFAULT_STATS_TILES, default_overlap

        overlap = default_overlap(args.tile) if args.overlap is None else args.overlap
        stats = DEFAULT_STATS_TILES if args.stats_tiles is None else args.stats_tiles
        how = f"estimated from {stats} tiles" if stats else "measured over all tiles"
        print(f"tiles of {args.tile} px overlapping by >= {overlap} px; instance/group-norm statistics "
              f"{how}", file=sys.stderr)
    written = stylize(args.inputs, generator=generator, out_dir=args.out, device=args.device, alpha=alpha,
                      content_net=reference, tile=args.tile, overlap=args.overlap, stats_tiles=args.stats_tiles,
                      precision=args.precision)
    for path in written:
        print(path)
    print(f"stylised {len(written)} image(s) into {args.out}", file=sys.stderr)
    return 0


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export a trained generator alone (onnx, torchscript or safetensors)")
    p.add_argument("--checkpoint", required=True, help="a run directory, generator.safetensors or checkpoint")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="export the EMA weights when the run kept them (default: yes)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the exported model next to PyTorch on an unseen size (default: yes)")


def cmd_export(args: argparse.Namespace) -> int:
    from gancr.export import DEFAULT_OPSET, export_generator

    if args.opset is not None and args.format != "onnx":
        raise GancrError("--opset applies to --format onnx only")
    result = export_generator(args.checkpoint, args.out, args.format, ema=args.ema,
                              opset=args.opset or DEFAULT_OPSET, check=args.check)
    print(result.summary())
    return 0


# ----------------------------------------------------------------------------------------
# the parser
# ----------------------------------------------------------------------------------------

#: (name, add-parser function, command function) for every subcommand, in help order.
COMMANDS: list[tuple[str, Callable[[Any], None], Callable[[argparse.Namespace], int]]] = [
    ("components", _add_components, cmd_components),
    ("describe", _add_describe, cmd_describe),
    ("validate", _add_validate, cmd_validate),
    ("schema", _add_schema, cmd_schema),
    ("train", _add_train, cmd_train),
    ("stylize", _add_stylize, cmd_stylize),
    ("export", _add_export, cmd_export),
    ("new-plugin", _add_new_plugin, cmd_new_plugin),
    ("eval", _add_eval, cmd_eval),
    ("bench", _add_bench, cmd_bench),
    ("report", _add_report, cmd_report),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gancr",
        description="GAN-based image style transfer that keeps the content of the input image.",
    )
    parser.add_argument("--version", action="version", version=f"gancr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, add, _ in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    command = {name: fn for name, _, fn in COMMANDS}[args.command]
    try:
        return command(args)
    except SpecError as exc:
        print(f"gancr {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GancrError as exc:
        print(f"gancr {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"gancr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
