"""Stylise a 4096x3072 photograph in tiles; report the time and the peak memory.

    python benchmarks/tiled_hires.py --checkpoint runs/quickstart [--tile 512] [--overlap 64]
                                     [--size 4096 3072] [--untiled] [--compare 1024 768]

The photograph is one of the built-in ones, upscaled (Lanczos) to the size asked for and
saved as a PNG. ``gancr stylize --tile`` runs in a child process, so that its peak resident
memory (``ru_maxrss`` of the children) is its own. ``--untiled`` runs the same image without
tiles too (several GB for 4096x3072: only on a machine with room to spare).

``--compare W H`` measures, on an image small enough to run whole, how far tiled outputs are
from the untiled one, with instance-norm statistics measured on all tiles, on a sample of
them, taken from the image downscaled 2x, and each tile's own (no freezing).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image


def photograph(size: tuple[int, int], path: Path) -> Path:
    from gancr.data import resolve_source

    source = resolve_source("builtin:photos")[0]
    with Image.open(source) as img:
        img.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(path)
    return path


def run_stylize(checkpoint: str, image: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of ``gancr stylize`` in a child process."""
    command = [sys.executable, "-m", "gancr", "stylize", "--checkpoint", checkpoint, str(image), "--out", str(out),
               *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("  (the peak of an earlier child was higher; run one case per invocation to see this one's)")
    return seconds, peak / 1024


def compare(checkpoint: str, size: tuple[int, int], tile: int, overlap: int) -> None:
    from gancr.data import load_image
    from gancr.data.resize import resize
    from gancr.inference import load_generator, stylize_tensor
    from gancr.inference.tiling import frozen_norm_stats, tile_layout, tiled_forward

    with tempfile.TemporaryDirectory() as tmp:
        x = load_image(photograph(size, Path(tmp) / "photo.png"))[None]
    generator = load_generator(checkpoint)
    start = time.perf_counter()
    whole = stylize_tensor(generator, x)
    print(f"untiled: {time.perf_counter() - start:.1f} s")

    def report(name: str, run) -> None:
        start = time.perf_counter()
        y = run().clamp(0, 1)
        seconds = time.perf_counter() - start
        err = (y - whole).abs()
        psnr = 10 * torch.log10(1.0 / (err**2).mean().clamp_min(1e-12))
        print(f"| {name} | {float(err.mean()):.4f} | {float(err.max()):.3f} | {float(psnr):.1f} | {seconds:.1f} |")

    n = len(tile_layout(size[1], size[0], tile, overlap, generator.reduction))
    print(f"tiled vs untiled on {size[0]}x{size[1]}, {n} tiles of {tile} overlapping by >= {overlap}:")
    print("| normalisation statistics | mean abs diff | max abs diff | PSNR (dB) | time (s) |")
    print("|---|---|---|---|---|")
    report(f"measured on all {n} tiles (exact)",
           lambda: stylize_tensor(generator, x, tile=tile, overlap=overlap, stats_tiles=0))
    for k in (16, 4):
        if k < n:
            report(f"measured on {k} of the tiles",
                   lambda: stylize_tensor(generator, x, tile=tile, overlap=overlap, stats_tiles=k))
    small = resize(x, scale=0.5)

    def downscaled() -> torch.Tensor:
        with torch.no_grad(), frozen_norm_stats(generator, small):
            return tiled_forward(generator, x, tile, overlap, freeze_norms=False)

    report("from the image downscaled 2x", downscaled)
    report("each tile its own (not frozen)", lambda: tiled_forward(generator, x, tile, overlap, freeze_norms=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/quickstart")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=[4096, 3072], metavar=("W", "H"))
    parser.add_argument("--untiled", action="store_true", help="also run without tiles (needs GBs)")
    parser.add_argument("--compare", type=int, nargs=2, default=None, metavar=("W", "H"))
    parser.add_argument("--stats-tiles", default=None, help="passed to gancr stylize")
    parser.add_argument("--skip-tiled", action="store_true", help="only --untiled / --compare")
    args = parser.parse_args()
    if args.compare:
        compare(args.checkpoint, tuple(args.compare), args.tile, args.overlap)
    if args.skip_tiled and not args.untiled:
        return
    with tempfile.TemporaryDirectory() as tmp:
        image = photograph(tuple(args.size), Path(tmp) / "photo.png")
        print(f"{args.size[0]}x{args.size[1]} photograph, torch threads: {torch.get_num_threads()}")
        if not args.skip_tiled:
            extra = ["--stats-tiles", args.stats_tiles] if args.stats_tiles is not None else []
            s, mib = run_stylize(args.checkpoint, image, Path(tmp) / "tiled",
                                 ["--tile", str(args.tile), "--overlap", str(args.overlap), *extra])
            print(f"tiled ({args.tile} px, overlap {args.overlap}): {s:.1f} s, peak RSS {mib:.0f} MiB")
        if args.untiled:
            s, mib = run_stylize(args.checkpoint, image, Path(tmp) / "untiled", [])
            print(f"untiled: {s:.1f} s, peak RSS {mib:.0f} MiB")


if __name__ == "__main__":
    main()
