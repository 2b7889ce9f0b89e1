"""Make docs/images/painting_pairs.png and the table of docs/painting.md: photographs a run did not
train on, stylised after one painting, scored against doing nothing.

    python docs/make_painting_figure.py --checkpoint runs/painting \\
        --painting ../shared/data/paintings/woman_with_hat_matisse.jpg \\
        --photo ../shared/data/photos/golden_gate.jpg --photo ../shared/data/photos/sailboat.jpg \\
        --photo ../shared/data/photos/blonde_girl.jpg

The figure: one row per photograph, its input and its output (at the evaluation size, longer
side ``--max-size``, shown ``--height`` pixels high), the painting at the left of the first row. The table (printed as Markdown, and with ``--json`` written as
JSON) compares the run with the identity (the output is the photograph itself), both scored by
:func:`gancr.evaluation.evaluate`, what ``gancr eval`` runs: per photograph the SSIM of the
luminance and the edge F1 between input and output; over the set, the Lab histogram and Gram
distances of the outputs to the painting (lower: the colours and textures moved toward it) and
the colour noise, output over input, next to the painting's over the input's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from gancr.data import load_image
from gancr.evaluation import evaluate
from gancr.data.resize import fit
from gancr.inference import load_generator, stylize_tensor
from gancr.metrics import edge_f1, ssim
from gancr.metrics.content import gray

HERE = Path(__file__).resolve().parent

#: The set metrics of the table: (key of evaluate's result, column title).
SET_METRICS = (
    ("style/lab_histogram_distance", "Lab histogram distance to the painting"),
    ("style/gram_distance", "Gram distance to the painting"),
    ("content/chroma_noise", "colour noise, output / input"),
)


def score(generator: torch.nn.Module, photos: list[Path], painting: Path, max_size: int, feature_size: int) -> dict:
    """The outputs and their scores: per photograph luminance SSIM and edge F1, and the set metrics."""
    outputs, per_photo = {}, {}
    for path in photos:
        x = fit(load_image(path), max_size)[None]
        y = stylize_tensor(generator, x).clamp(0, 1)
        outputs[path.stem] = (x[0], y[0])
        luminance = [gray(t).expand(-1, 3, -1, -1) for t in (x, y)]  # ssim takes RGB: three equal channels
        per_photo[path.stem] = {"ssim_luminance": float(ssim(*luminance)), "edge_f1": float(edge_f1(x, y))}
    result = evaluate(generator, [str(p) for p in photos], str(painting), max_size=max_size,
                      feature_size=feature_size, kid_subsets=10)
    metrics = {key: result["metrics"][key]["value"] for key, _ in SET_METRICS}
    metrics["style/chroma_noise"] = result["metrics"]["style/chroma_noise"]["value"]
    return {"outputs": outputs, "per_photo": per_photo, "set": metrics,
            "gram_features": result["features"]["perceptual"]["description"]}


def _panel(image: torch.Tensor, height: int) -> Image.Image:
    w = round(image.shape[-1] * height / image.shape[-2])
    t = torch.nn.functional.interpolate(image[None], size=(height, w), mode="bilinear", antialias=True)[0]
    return Image.fromarray((t.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8"))


def figure(painting: Path, outputs: dict, height: int) -> Image.Image:
    """One row per photograph: its input and its output; the painting at the left of the first row."""
    label_h, gap = 18, 6
    art = _panel(load_image(painting), height)
    rows = [(name, _panel(x, height), _panel(y, height)) for name, (x, y) in outputs.items()]
    photo_w = max(r[1].width for r in rows)
    canvas = Image.new("RGB", (art.width + 2 * (photo_w + gap), len(rows) * (height + label_h + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    canvas.paste(art, (0, label_h))
    draw.text((3, 3), "the painting", fill="black")
    for i, (name, x, y) in enumerate(rows):
        top = i * (height + label_h + gap)
        for left, label, image in ((art.width + gap, f"{name}: input", x), (art.width + photo_w + 2 * gap, "output", y)):
            canvas.paste(image, (left, top + label_h))
            draw.text((left + 3, top + 3), label, fill="black")
    return canvas


def table(run: dict, identity: dict, painting: Path) -> str:
    """The Markdown tables of docs/painting.md: per photograph, then over the set."""
    lines = ["| photograph | SSIM of the luminance | edge F1 |", "|---|---|---|"]
    for name, values in run["per_photo"].items():
        lines.append(f"| {name} | {values['ssim_luminance']:.3f} | {values['edge_f1']:.3f} |")
    lines += ["", "| | " + " | ".join(title for _, title in SET_METRICS) + " |",
              "|---" * (len(SET_METRICS) + 1) + "|"]
    for label, result in (("identity (the photographs)", identity), ("the run", run)):
        lines.append(f"| {label} | " + " | ".join(f"{result['set'][key]:.4g}" for key, _ in SET_METRICS) + " |")
    lines.append(f"| {painting.stem} itself | 0 | 0 | {run['set']['style/chroma_noise']:.4g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/painting", help="a trained run")
    parser.add_argument("--painting", required=True, help="the painting the run was trained on")
    parser.add_argument("--photo", action="append", required=True, help="a photograph (repeatable)")
    parser.add_argument("--max-size", type=int, default=256, help="longer side of the evaluation images")
    parser.add_argument("--feature-size", type=int, default=224,
                        help="side of the views of the Gram features, as gancr eval's (default: %(default)s)")
    parser.add_argument("--height", type=int, default=240, help="panel height of the figure in pixels")
    parser.add_argument("--out", default=str(HERE / "images" / "painting_pairs.png"))
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    photos, painting = [Path(p) for p in args.photo], Path(args.painting)
    run = score(load_generator(args.checkpoint), photos, painting, args.max_size, args.feature_size)
    identity = score(torch.nn.Identity(), photos, painting, args.max_size, args.feature_size)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure(painting, run["outputs"], args.height).save(out)
    print(table(run, identity, painting))
    print(f"Gram features: {run['gram_features']}")
    print(f"wrote {out}")
    if args.json:
        numbers = {k: {"per_photo": r["per_photo"], "set": r["set"]} for k, r in (("run", run), ("identity", identity))}
        Path(args.json).write_text(json.dumps(numbers, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
