"""Regenerate docs/images/alpha_strip.png: one photograph stylised at several strengths.

    python docs/make_alpha_strip.py --checkpoint runs/quickstart

One row per photograph (by default a training photograph, ``builtin:photos``' astronaut,
and the held-out ``builtin:holdout`` ones): the input, then alpha = 0 (the input itself),
0.25, 0.5, 0.75 and 1 (full style).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from gancr.data import load_image, resolve_source
from gancr.inference import load_generator, stylize_tensor

HERE = Path(__file__).resolve().parent


def strip(checkpoint: str, images: list[str] | None, alphas: list[float], height: int) -> Image.Image:
    generator = load_generator(checkpoint)
    if not images:
        images = [str(resolve_source("builtin:photos")[0]), *map(str, resolve_source("builtin:holdout"))]
    rows = [row(generator, path, alphas, height) for path in images]
    width = max(r.width for r in rows)
    canvas = Image.new("RGB", (width, sum(r.height for r in rows)), "white")
    top = 0
    for r in rows:
        canvas.paste(r, (0, top))
        top += r.height
    return canvas


def row(generator, path: str, alphas: list[float], height: int) -> Image.Image:
    x = load_image(path)[None]
    w = round(x.shape[-1] * height / x.shape[-2])
    x = torch.nn.functional.interpolate(x, size=(height, w), mode="bilinear", antialias=True).clamp(0, 1)
    panels = [(f"input ({Path(path).stem})", x[0])]
    for a in alphas:
        panels.append((f"alpha {a:g}", stylize_tensor(generator, x, alpha=a)[0]))
    label_h, gap = 18, 4
    canvas = Image.new("RGB", (len(panels) * (w + gap) - gap, height + label_h + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, t) in enumerate(panels):
        array = (t.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype("uint8")
        canvas.paste(Image.fromarray(array), (i * (w + gap), label_h))
        draw.text((i * (w + gap) + 4, 3), label, fill="black")
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/quickstart", help="a trained run")
    parser.add_argument("--image", action="append", default=None,
                        help="a photograph (repeatable; default: astronaut (trained on) and builtin:holdout)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--height", type=int, default=140, help="panel height in pixels")
    parser.add_argument("--out", default=str(HERE / "images" / "alpha_strip.png"))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    strip(args.checkpoint, args.image, args.alphas, args.height).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
