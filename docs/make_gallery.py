"""Make the figures and tables of docs/gallery.md from real runs.

    gancr bench painting --painting ../shared/data/paintings/la_muse.jpg ... \\
        --photos train_photos/ --holdout holdout/ --out runs/bench-painting --json runs/bench-painting/result.json
    gancr train examples/quickstart.yaml --out runs/quickstart
    python docs/make_gallery.py --bench runs/bench-painting [more folders] --quickstart runs/quickstart

From ``gancr bench painting``'s folders (one or several, each with its ``result.json``, the outputs it saved under
``outputs/PAINTING/PHOTO_{recipe,gatys}.png`` and the photographs and paintings the result
names, found with ``--photos`` and ``--paintings``) it writes, under ``--out``:

- ``gallery_PAINTING.jpg``: the painting, then a row per held-out photograph: input | recipe | Gatys;
- ``gallery_strip.jpg``: one row per painting: painting | photograph | recipe (the README's picture);
- ``gallery_quickstart.jpg`` (with ``--quickstart``): the quickstart run's generator on the
  built-in held-out photographs at the size ``gancr bench quality`` scores them (longer side
  192 px, the scale of its training crops), input over output;

and prints the Markdown tables of item 4 over all the folders, as ``gancr bench painting`` prints
them for one (per painting and method: remaining style fraction, luminance SSIM, HED and Canny
F1, chroma noise beside the painting's, seconds; the goal against Gatys; per photograph).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from gancr.bench.painting import painting_markdown, summarize
from gancr.data import load_image, resolve_source
from gancr.data.resize import fit, resize
from gancr.storage.files import atomic_write_stream

#: Side of a square tile, in pixels.
TILE = 224


def _tile(image: torch.Tensor, side: int = TILE) -> Image.Image:
    """``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1], fitted in a white ``side`` square."""
    image = image.reshape(3, *image.shape[-2:]).float()
    image = resize(image, scale=side / max(image.shape[-2:])).clamp(0, 1)
    pixels = (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(Image.fromarray(pixels), ((side - pixels.shape[1]) // 2, (side - pixels.shape[0]) // 2))
    return canvas


def _sheet(rows: list[list[Image.Image | None]], side: int = TILE, gap: int = 4) -> Image.Image:
    """Tiles in rows (``None`` leaves a blank), ``gap`` pixels apart, on white."""
    width = max(len(r) for r in rows)
    sheet = Image.new("RGB", (width * (side + gap) - gap, len(rows) * (side + gap) - gap), "white")
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            if tile is not None:
                sheet.paste(tile, (j * (side + gap), i * (side + gap)))
    return sheet


def _by_stem(source: str) -> dict[str, Path]:
    return {p.stem: p for p in resolve_source(source)}


def merged_results(benches: list[Path]) -> tuple[dict, dict[str, Path]]:
    """The results of several ``gancr bench painting`` folders as one (rows, chroma and the summary
    over all of them), and the folder that holds each painting's outputs."""
    rows, chroma, folders = [], {}, {}
    for bench in benches:
        result = json.loads((bench / "result.json").read_text(encoding="utf-8"))
        rows += result["rows"]
        chroma.update(result["chroma_style"])
        folders.update({r["painting"]: bench for r in result["rows"]})
    return {"rows": rows, "chroma_style": chroma, "summary": summarize(rows, chroma)}, folders


def painting_sheets(benches: list[Path], photos: str, paintings: str, out: Path) -> list[Path]:
    """A sheet per painting and the strip, from ``gancr bench painting``'s folders."""
    result, folders = merged_results(benches)
    photo_files, painting_files = _by_stem(photos), _by_stem(paintings)
    names = list(dict.fromkeys(r["painting"] for r in result["rows"]))
    written, strip = [], []
    for i, name in enumerate(names):
        bench = folders[name]
        painting = _tile(load_image(painting_files[name]))
        shots = list(dict.fromkeys(r["photo"] for r in result["rows"] if r["painting"] == name))
        rows: list[list[Image.Image | None]] = [[None, painting, None]]
        for photo in shots:
            outputs = [load_image(bench / "outputs" / name / f"{photo}_{m}.png") for m in ("recipe", "gatys")]
            rows.append([_tile(load_image(photo_files[photo])), *[_tile(o) for o in outputs]])
        written.append(_save(_sheet(rows), out / f"gallery_{name}.jpg"))
        shown = 1 + i % len(shots)  # a different photograph from one painting to the next
        strip.append([painting, rows[shown][0], rows[shown][1]])
    written.append(_save(_sheet(strip, side=160), out / "gallery_strip.jpg"))
    print(painting_markdown(result))
    print(f"Gatys' own mean remaining style fraction: {result['summary']['goal']['gatys_fraction']:.3f}")
    return written


#: The longer side the quickstart's photographs are stylised at: ``gancr bench quality``'s (3 x 64).
QUICKSTART_SIDE = 192


def quickstart_sheet(run: Path, out: Path) -> Path:
    """The quickstart's generator (its EMA) on ``builtin:holdout`` fitted to a longer side of
    :data:`QUICKSTART_SIDE` (where ``gancr bench quality`` scores it), input over output."""
    from gancr.inference import load_generator

    generator = load_generator(run).eval()
    inputs, outputs = [], []
    for path in resolve_source("builtin:holdout"):
        x = fit(load_image(path), QUICKSTART_SIDE)
        with torch.no_grad():
            y = generator(x[None]).clamp(0, 1)
        inputs.append(_tile(x, 192))
        outputs.append(_tile(y, 192))
        print(f"quickstart {path.stem}: mean |G(x) - x| = {float((y[0] - x).abs().mean()):.4f}")
    return _save(_sheet([inputs, outputs], side=192), out / "gallery_quickstart.jpg")


def _save(image: Image.Image, path: Path) -> Path:
    atomic_write_stream(path, lambda stream: image.save(stream, format="JPEG", quality=88))
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, nargs="+", help="gancr bench painting's --out folders, each with result.json")
    p.add_argument("--photos", default="../shared/data/photos", help="where the held-out photographs are")
    p.add_argument("--paintings", default="../shared/data/paintings", help="where the paintings are")
    p.add_argument("--quickstart", type=Path, help="a trained quickstart run")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
    args = p.parse_args(argv)
    if args.bench is None and args.quickstart is None:
        p.error("give --bench, --quickstart or both")
    if args.bench is not None:
        painting_sheets(args.bench, args.photos, args.paintings, args.out)
    if args.quickstart is not None:
        quickstart_sheet(args.quickstart, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
