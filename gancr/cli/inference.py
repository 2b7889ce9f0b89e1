"""``gancr stylize`` and ``gancr export``: using a trained generator."""

from __future__ import annotations

import argparse
from typing import Any

from gancr.cli.output import note, notes_enabled
from gancr.errors import GancrError
from gancr.storage.files import output_argument

__all__ = ["add_stylize", "cmd_stylize", "add_export", "cmd_export"]


def add_stylize(sub: Any) -> None:
    p = sub.add_parser("stylize", help="stylise images or folders with a trained generator")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--checkpoint", required=True, help="a run directory, generator.safetensors or checkpoint")
    output_argument(p, "--out", folder=True, required=True, help="output folder (PNG files)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="use the EMA weights when the run kept them (default: yes)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default: %(default)s)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: on CUDA the faster of fp32 and bf16 for this model, measured; fp32 on the CPU")
    p.add_argument("--alpha", type=float, default=1.0, metavar="A",
                   help="strength: 0 = the input photograph, 1 = full style (default); x + A (G(x) - x)")
    p.add_argument("--tile", type=int, default=None, metavar="SIZE",
                   help="stylise in overlapping tiles of SIZE pixels (bounded memory for big photos)")
    p.add_argument("--overlap", type=int, default=None, metavar="PX",
                   help="least overlap between tiles (default: SIZE/8, at least 32, at most SIZE/4)")
    p.add_argument("--stats-tiles", type=int, default=None, metavar="N",
                   help="with --tile: estimate instance/group-norm statistics from N tiles spread over "
                        "the image (faster, approximate; default: all tiles, exact)")


def cmd_stylize(args: argparse.Namespace) -> int:
    from gancr.devices import resolve_device
    from gancr.inference import StylizeOptions, open_run, stylize

    options = StylizeOptions(alpha=args.alpha, tile=args.tile, overlap=args.overlap, stats_tiles=args.stats_tiles,
                             precision=args.precision)  # checked once, before the run is read
    if args.tile is None and (args.overlap is not None or args.stats_tiles is not None):
        raise GancrError("--overlap and --stats-tiles go with --tile SIZE")
    device = resolve_device(args.device, "--device")
    generator = open_run(args.checkpoint).generator(ema=args.ema, device=device)
    if args.tile is not None:
        from gancr.inference.tiling import DEFAULT_STATS_TILES, EXACT_STATS_LIMIT, default_overlap

        overlap = default_overlap(args.tile) if args.overlap is None else args.overlap
        stats = DEFAULT_STATS_TILES if args.stats_tiles is None else args.stats_tiles
        how = f"estimated from {stats} tiles" if stats else "measured over all tiles"
        if args.stats_tiles is None:
            how += f" (estimated from {EXACT_STATS_LIMIT} on images of more tiles)"
        note(args, f"tiles of {args.tile} px overlapping by >= {overlap} px; instance/group-norm statistics {how}")
    written = stylize(args.inputs, generator=generator, out_dir=args.out, options=options, device=device,
                      progress=notes_enabled(args), skip_unreadable=True)
    for path in written:
        print(path)
    skipped = f"; skipped {len(written.skipped)} unreadable image(s)" if written.skipped else ""
    note(args, f"stylised {len(written)} image(s) into {args.out}{skipped}")
    return 0


def add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export a trained generator alone (onnx, torchscript or safetensors)")
    p.add_argument("--checkpoint", required=True, help="a run directory, generator.safetensors or checkpoint")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    output_argument(p, "--out", required=True, help="the file to write")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="export the EMA weights when the run kept them (default: yes)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the exported model next to PyTorch on an unseen size (default: yes)")


def cmd_export(args: argparse.Namespace) -> int:
    from gancr.inference.export import DEFAULT_OPSET, export_generator

    if args.opset is not None and args.format != "onnx":
        raise GancrError("--opset applies to --format onnx only")

    result = export_generator(args.checkpoint, args.out, args.format, ema=args.ema,
                              opset=args.opset or DEFAULT_OPSET, check=args.check)
    print(result.summary())
    return 0
