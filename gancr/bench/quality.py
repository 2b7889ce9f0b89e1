"""``gancr bench quality``: the known-target benchmark.

Trains each spec (default: gancr's ``examples/quickstart.yaml`` and the CycleGAN-like
baseline ``examples/cyclegan_like.yaml``) unpaired on ``builtin:photos`` against
``builtin:cartoon``, one after the other in one process, with the *same* number of steps,
image size, batch size, seed and data; then stylises the held-out photographs
``builtin:holdout`` and scores ``G(x)`` against their true cartoons
``builtin:holdout_cartoon`` (PSNR, SSIM, edge F1), with the content-retention and style
metrics of :func:`gancr.evaluation.evaluate`, in one table.

Doing nothing is a baseline: the ``identity`` row (``G(x) = x``) is scored in the same run,
and every spec's row gives its difference from it on the three target metrics, on average
and on its worst held-out photograph (a model below identity has learned to damage images,
whatever its losses say). ``--holdout DIR`` evaluates on other photographs: their known
targets are made with :func:`gancr.data.known_targets` (the same cartoon, the same preparation).

What the benchmark changes in each spec (so that the comparison is fair and fits the time):

- ``training.stages``: each stage's steps scaled so the stages add up to ``--steps``
  (proportionally, at least one step each; weights such as ``w_c`` are kept);
- ``training.image_size``, ``training.batch_size``, ``training.seed``: the same for all;
- ``data``: the same for all: ``builtin:photos`` / ``builtin:cartoon``, shorter side
  ``2.5 x size`` on load, crops of 15-25 % of the area resized to ``size``, flips, no hue
  jitter (the quickstart's data at size 64). Such crops show the photographs at the scale
  they are evaluated at (a 3:2 photograph's shorter side about ``2 x size``): a model trained
  on views twice as small draws strokes and outlines at the wrong scale;
- ``--max-width W`` (default 64) shrinks a wider model to fit the time budget: when the
  generator's ``conv`` encoder is wider than ``W`` channels, every ``conv`` encoder width and
  the discriminator's ``width`` are divided by the smallest power of two that brings it to
  ``W`` (the CycleGAN-like ResNet-9: ``[64, 128, 256]`` -> ``[16, 32, 64]``, PatchGAN 64 -> 16;
  depth, blocks and losses unchanged). ``--max-width 0`` keeps the widths;
- checkpoints only at the end, sample grids every quarter of the run, no TensorBoard.

The held-out photographs are evaluated with their longer side fitted to ``3 x size``
pixels (about the scale of the training crops); their cartoons are resized to match.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gancr.errors import GancrError
from gancr.storage.files import atomic_write_text, output_argument
from gancr.text import text_table

__all__ = [
    "DEFAULT_SPECS",
    "bench_quality",
    "differences_from_identity",
    "prepare_spec",
    "quality_table",
    "quality_markdown",
    "add_arguments",
    "run",
]

#: The specs ``gancr bench quality`` compares by default: gancr's method, then the baseline.
DEFAULT_SPECS = ("examples/quickstart.yaml", "examples/cyclegan_like.yaml")

#: Defaults of ``gancr bench quality`` (chosen to finish in under 10 minutes on 2 CPU cores).
DEFAULT_STEPS = 600
DEFAULT_SIZE = 64
DEFAULT_BATCH = 4
DEFAULT_MAX_WIDTH = 64
#: the training crops' share of the loaded image's area: the held-out photographs' scale (see the module doc)
CROP_SCALE = (0.15, 0.25)

#: The target metrics, scored against the known cartoon: (metric key, per-image key, header).
TARGET_METRICS: tuple[tuple[str, str, str], ...] = (
    ("reference/psnr", "ref_psnr", "PSNR"),
    ("reference/ssim", "ref_ssim", "SSIM"),
    ("reference/edge_f1", "ref_edge_f1", "edge F1"),
)

#: Columns of the quality table after the target metrics: (metric key, header, better).
QUALITY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("content/chroma_noise", "chroma noise", "lower"),
    ("content/ssim", "SSIM(x,G(x))", "higher"),
    ("content/edge_f1", "edge F1", "higher"),
    ("content/hed_edge_f1", "HED F1", "higher"),
    ("content/sobel_correlation", "Sobel corr", "higher"),
    ("content/perceptual_distance", "perceptual", "lower"),
    ("content/content_net_distance", "content net", "lower"),
    ("style/gram_distance", "Gram", "lower"),
    ("style/lab_histogram_distance", "Lab hist", "lower"),
    ("style/kid", "KID", "lower"),
    ("style/fid", "FID", "lower"),
)


# --------------------------------------------------------------------------------------
# preparing the specs
# --------------------------------------------------------------------------------------


def _find_spec(path: str) -> Path:
    """A spec path as given, or (for the defaults) inside the source checkout of gancr."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    import gancr

    repo = Path(gancr.__file__).resolve().parent.parent / path
    if repo.is_file():
        return repo
    raise GancrError(f"bench quality: spec {path!r} not found (give a path to a YAML or JSON spec)")


def _scale_stages(stages: list[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """Each stage's steps scaled so they add up to ``steps`` (largest remainder, >= 1 each)."""
    if steps < len(stages):
        raise GancrError(f"bench quality: --steps {steps} is fewer than the spec's {len(stages)} stages")
    total = sum(s["steps"] for s in stages)
    raw = [s["steps"] * steps / total for s in stages]
    counts = [max(1, math.floor(r)) for r in raw]
    order = sorted(range(len(stages)), key=lambda i: raw[i] - math.floor(raw[i]), reverse=True)
    k = 0
    while sum(counts) < steps:
        counts[order[k % len(order)]] += 1
        k += 1
    while sum(counts) > steps:  # only when several stages were raised to 1
        i = max(range(len(counts)), key=lambda j: counts[j])
        counts[i] -= 1
    return [{**s, "steps": c} for s, c in zip(stages, counts)]


def _shrink(model: dict[str, Any], max_width: int) -> tuple[int, list[str]]:
    """Divide conv encoder widths and the discriminator width by a power of two, in place."""
    enc = model.get("generator", {}).get("encoder", {})
    if not max_width or enc.get("name") != "conv" or not enc.get("widths") or max(enc["widths"]) <= max_width:
        return 1, []
    factor = 1
    while max(enc["widths"]) / factor > max_width:
        factor *= 2
    notes = []
    encoders = [("generator encoder", enc)]
    cn = model.get("content_net", {})
    if not cn.get("share_encoder") and (cn.get("encoder") or {}).get("name") == "conv":
        encoders.append(("content-net encoder", cn["encoder"]))
    for what, e in encoders:
        new = [max(1, w // factor) for w in e["widths"]]
        notes.append(f"{what} widths {e['widths']} -> {new}")
        e["widths"] = new
    disc = model.get("discriminator", {})
    if isinstance(disc.get("width"), int):
        new_width = max(1, disc["width"] // factor)
        notes.append(f"discriminator width {disc['width']} -> {new_width}")
        disc["width"] = new_width
    return factor, notes


def prepare_spec(
    path: str | os.PathLike,
    *,
    steps: int = DEFAULT_STEPS,
    size: int = DEFAULT_SIZE,
    batch_size: int = DEFAULT_BATCH,
    max_width: int = DEFAULT_MAX_WIDTH,
    seed: int = 0,
    device: str = "auto",
) -> tuple[dict[str, Any], list[str]]:
    """The spec as the benchmark trains it, and what was changed (see the module doc)."""
    from gancr.spec import load_spec

    spec = load_spec(str(_find_spec(str(path)))).to_dict()
    t = spec["training"]
    changes = []
    t["stages"] = _scale_stages(t["stages"], steps)
    changes.append("stages " + ", ".join(f"{s['name']} {s['steps']}" for s in t["stages"]))
    for key, value in (("image_size", size), ("batch_size", batch_size), ("seed", seed)):
        if t.get(key) != value:
            changes.append(f"{key} {t.get(key)} -> {value}")
        t[key] = value
    t["device"] = device
    t["checkpoint"] = {**t.get("checkpoint", {}), "every": max(steps, 1), "keep": 1}
    t["sample_every"] = max(1, steps // 4)
    t["log_every"] = 1
    t["tensorboard"] = False
    spec["data"] = {
        **spec.get("data", {}),
        "content": "builtin:photos",
        "style": "builtin:cartoon",
        "load_size": round(2.5 * size),
        "crop_scale": list(CROP_SCALE),
        "flip": True,
        "style_hue": 0.0,
    }
    _, notes = _shrink(spec["model"], max_width)
    changes += notes
    return spec, changes


# --------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class _Identity:
    """``G(x) = x``: the benchmark's do-nothing baseline (a callable, so evaluate runs it as a generator)."""

    def __call__(self, x: Any) -> Any:
        return x


def _holdout_sets(holdout: str, root: Path) -> tuple[Any, Any, str]:
    """(content images, their known targets, the targets' label) of ``--holdout``."""
    if holdout == "builtin:holdout":
        return holdout, "builtin:holdout_cartoon", "builtin:holdout_cartoon"
    from gancr.data import known_targets, resolve_source

    paths = resolve_source(holdout)
    folder = root / "holdout_targets"
    known_targets(paths, folder)
    return paths, str(folder), f"cartoonize() of {holdout}"


def differences_from_identity(ev: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
    """Each target metric's difference from the identity row: mean, and per held-out image."""
    base = {p["name"]: p for p in identity.get("per_image", [])}
    out: dict[str, Any] = {}
    for key, row, _ in TARGET_METRICS:
        mean = ev["metrics"][key]["value"]
        ref = identity["metrics"][key]["value"]
        per = {p["name"]: p[row] - base[p["name"]][row] for p in ev.get("per_image", [])
               if row in p and row in base.get(p["name"], {})}
        out[key] = {
            "mean": None if mean is None or ref is None else mean - ref,
            "per_image": per,
            "worst": min(per.values()) if per else None,
            "worst_image": min(per, key=per.get) if per else None,
        }
    return out


def bench_quality(
    specs: Sequence[str | os.PathLike] = DEFAULT_SPECS,
    *,
    steps: int = DEFAULT_STEPS, size: int = DEFAULT_SIZE, batch_size: int = DEFAULT_BATCH,
    max_width: int = DEFAULT_MAX_WIDTH, seed: int = 0, holdout: str = "builtin:holdout",
    out_dir: str | os.PathLike | None = None, encoder: Any = None, feature_size: int = 224,
    device: str = "auto", quiet: bool = True, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train every spec the same way, score each on the held-out photos' true cartoons.

    Args:
        specs: spec files; the first is reported as gancr's method, the others as baselines.
        steps, size, batch_size, seed: the same for every spec.
        max_width: shrink wider ``conv`` models to this many channels (0: keep).
        holdout: the photographs to score on: ``builtin:holdout`` (default; its targets are
            ``builtin:holdout_cartoon``) or a folder, file or list of them (targets made with
            :func:`gancr.data.known_targets`).
        out_dir: keep the run directories here (default: a temporary folder, deleted).
        encoder: the encoder spec of the perceptual/Gram/KID features (see
            :func:`gancr.evaluation.evaluate`).
        feature_size: side of the square views fed to that encoder.
        device: where to train and evaluate.
        quiet: no progress bars.
        log: called with a line of progress per phase (default: nothing).

    Returns:
        A JSON-serialisable dict: ``settings``, ``machine`` (with the load average before
        and after), ``identity`` (the evaluation of ``G(x) = x``), ``runs`` (per spec: the
        changes made, training time, throughput, parameters, the evaluation, and
        ``vs_identity``: each target metric's difference from identity, mean and per
        image), ``seconds``.
    """
    import tempfile
    from datetime import datetime, timezone

    from gancr.evaluation import evaluate

    say = log or (lambda line: None)
    if steps < 1 or size < 16 or batch_size < 1:
        raise GancrError(f"bench quality: need --steps >= 1, --size >= 16, --batch-size >= 1 (got {steps}, {size}, {batch_size})")
    paths = [_find_spec(str(s)) for s in specs]
    if not paths:
        raise GancrError("bench quality: give at least one --spec")
    prepared = [(p, *prepare_spec(p, steps=steps, size=size, batch_size=batch_size, max_width=max_width,
                                  seed=seed, device=device)) for p in paths]
    started, load_before = time.perf_counter(), _load()
    tmp = tempfile.TemporaryDirectory(prefix="gancr-bench-quality-") if out_dir is None else None
    root = Path(tmp.name if tmp is not None else out_dir)  # type: ignore[arg-type]
    names = _unique([p.stem for p in paths])
    runs: list[dict[str, Any]] = []
    try:
        content, target, target_label = _holdout_sets(holdout, root)
        scoring = dict(encoder=encoder, max_size=3 * size, feature_size=feature_size, per_image=True)
        say(f"[identity] scoring G(x) = x on {holdout}")
        identity = evaluate(_Identity(), content, "builtin:cartoon", target, device=device, **scoring)
        for (path, spec, changes), name in zip(prepared, names):
            say(f"[{name}] training {steps} steps at {size} px ({'; '.join(changes)})")
            run = _train_and_score(spec, root / name, (content, target), scoring, quiet=quiet,
                                   say=lambda line, name=name: say(f"[{name}] {line}"))
            runs.append({"name": name, "spec": str(path), "role": "gancr" if not runs else "baseline",
                         "description": spec.get("description"), "changes": changes, **run,
                         "run_dir": str(root / name) if tmp is None else None,
                         "vs_identity": differences_from_identity(run["eval"], identity)})
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {
        "benchmark": "quality",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {"steps": steps, "size": size, "batch_size": batch_size, "max_width": max_width, "seed": seed,
                     "content": "builtin:photos", "style": "builtin:cartoon", "holdout": holdout,
                     "target": target_label, "eval_max_size": 3 * size, "feature_size": feature_size},
        "machine": {**_machine(), "load_before": load_before, "load_after": _load()},
        "identity": identity,
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _train_and_score(spec: dict[str, Any], run_dir: Path, holdout: tuple[Any, Any], scoring: dict[str, Any], *,
                     quiet: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Train one spec into ``run_dir`` and score it on ``holdout`` (content images, their targets):
    its parameters, steps, times, throughput and evaluation."""
    from gancr.evaluation import evaluate
    from gancr.training import Trainer

    t0 = time.perf_counter()
    trainer = Trainer(spec, run_dir, quiet=quiet)
    result = trainer.fit()
    train_s = time.perf_counter() - t0
    say(f"trained in {train_s:.0f} s; evaluating")
    t1 = time.perf_counter()
    ev = evaluate(trainer, holdout[0], "builtin:cartoon", holdout[1], device=trainer.device, **scoring)
    eval_s = time.perf_counter() - t1
    say(f"evaluated in {eval_s:.0f} s")
    return {
        "generator_parameters": sum(p.numel() for p in trainer.generator.parameters()),
        "steps": result.step,
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "images_per_s": _rates(trainer.run.metrics_file),
        "eval": ev,
    }


def _unique(names: list[str]) -> list[str]:
    out, seen = [], {}
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}-{k}")
    return out


def _rates(metrics_file: Path) -> float | None:
    """Median images/s of a run's logged steps (the first step, with its warm-up, left out)."""
    import statistics

    try:
        rows = [json.loads(line) for line in metrics_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        return None
    values = [r["images_per_s"] for r in rows[1:] if isinstance(r.get("images_per_s"), (int, float))]
    return round(statistics.median(values), 2) if values else None


# --------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    return f"{entry['value']:.4g}"


def _signed(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


#: Digits of each target metric's differences.
_DIGITS = {"reference/psnr": 2, "reference/ssim": 3, "reference/edge_f1": 3}


def _rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row for identity, one per spec: target metrics with their differences, then the rest."""
    arrow = {"higher": "↑", "lower": "↓"}
    header = ["spec", "G params", "train s", "img/s"]
    for _, _, h in TARGET_METRICS:
        header += [f"target {h} ↑", f"Δ {h} (worst)"]
    header += [f"{h} {arrow[b]}" for _, h, b in QUALITY_COLUMNS]
    entries = [("identity (G(x) = x)", None, result["identity"], None)]
    entries += [(run["name"], run, run["eval"], run["vs_identity"]) for run in result["runs"]]
    rows = []
    for name, run, ev, diff in entries:
        m = ev["metrics"]
        row = [name,
               "-" if run is None else f"{run['generator_parameters'] / 1e6:.2f}M",
               "-" if run is None else f"{run['train_seconds']:.0f}",
               "-" if run is None or run["images_per_s"] is None else f"{run['images_per_s']:.1f}"]
        for key, _, _ in TARGET_METRICS:
            row.append(_cell(m.get(key)))
            d = _DIGITS[key]
            row.append("-" if diff is None else f"{_signed(diff[key]['mean'], d)} ({_signed(diff[key]['worst'], d)})")
        row += [_cell(m.get(key)) for key, _, _ in QUALITY_COLUMNS]
        rows.append(row)
    return header, rows


def _image_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per held-out photograph: PSNR / SSIM / edge F1 against its target, identity then each spec."""
    names = ["identity", *[run["name"] for run in result["runs"]]]
    evals = [result["identity"], *[run["eval"] for run in result["runs"]]]
    header = ["photograph", *[f"{n} PSNR / SSIM / F1" for n in names]]
    rows = []
    for i, item in enumerate(result["identity"].get("per_image", [])):
        row = [item["name"]]
        for ev in evals:
            p = ev["per_image"][i]
            row.append(" / ".join(f"{p[k]:.{d}f}" if k in p else "n/a"
                                  for k, d in (("ref_psnr", 2), ("ref_ssim", 3), ("ref_edge_f1", 3))))
        rows.append(row)
    return header, rows


def _notes(result: dict[str, Any]) -> list[str]:
    s = result["settings"]
    chroma = result["identity"]["metrics"].get("style/chroma_noise", {}).get("value")
    lines = [
        f"{s['steps']} steps, {s['size']} px, batch {s['batch_size']}, seed {s['seed']}, same data for every spec; "
        f"scored on {s['holdout']} (longer side {s['eval_max_size']} px) against {s['target']}.",
        "target = G(x) vs the true cartoon of the held-out photo; Δ = difference from the identity row (G(x) = x), "
        "the mean over the photographs and, in brackets, the worst photograph; the other content columns compare "
        "x with G(x); style columns compare the outputs with builtin:cartoon.",
        "chroma noise = high-frequency colour of the outputs over the inputs'; the style set's own value is "
        f"{'n/a' if chroma is None else f'{chroma:.4g}'} (an output set at or below it adds no colour noise).",
    ]
    if result["runs"]:
        f = result["runs"][0]["eval"]["features"]
        lines.append(f"perceptual/Gram features: {f['perceptual']['description']}; KID/FID features: {f['kid_fid']['description']}.")
    for run in result["runs"]:
        lines.append(f"{run['name']} ({run['spec']}): {'; '.join(run['changes'])}.")
    m = result["machine"]
    lines.append(f"{result['date']}; {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads); "
                 f"load average before {m['load_before']}, after {m['load_after']}; total {result['seconds']:.0f} s.")
    return lines


def quality_table(result: dict[str, Any]) -> str:
    """The benchmark's tables as text: one row per spec (identity first), per photograph, then the notes."""
    header, rows = _rows(result)
    image_header, image_rows = _image_rows(result)
    return "\n".join(text_table(header, rows) + [""] + text_table(image_header, image_rows) + ["", *_notes(result)])


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]


def quality_markdown(result: dict[str, Any]) -> str:
    """The benchmark's tables as Markdown (for docs/evaluation.md), with its notes."""
    return "\n".join(_markdown(*_rows(result)) + [""] + _markdown(*_image_rows(result)) + [""]
                     + [f"- {n}" for n in _notes(result)])


# --------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gancr bench quality``."""
    p.add_argument("--spec", dest="specs", nargs="+", default=list(DEFAULT_SPECS), metavar="SPEC",
                   help="specs to compare, gancr's first (default: %(default)s)")
    p.add_argument("--steps", type=int, metavar="N", default=DEFAULT_STEPS, help="training steps of every spec (default: %(default)s)")
    p.add_argument("--size", type=int, metavar="S", default=DEFAULT_SIZE, help="training image size (default: %(default)s)")
    p.add_argument("--batch-size", type=int, metavar="B", default=DEFAULT_BATCH, help="batch size of every spec (default: %(default)s)")
    p.add_argument("--max-width", type=int, metavar="W", default=DEFAULT_MAX_WIDTH,
                   help="shrink wider conv models to this many channels, 0 to keep (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed of every spec (default: 0)")
    p.add_argument("--holdout", default="builtin:holdout", metavar="DIR",
                   help="photographs to score on: a folder or file (their known targets are made with "
                        "cartoonize()), default: %(default)s")
    p.add_argument("--encoder", default=None, metavar="YAML", help="encoder of the feature metrics as YAML/JSON "
                   "(default: '{name: vgg19, layer: relu3_1}', random weights)")
    p.add_argument("--feature-size", type=int, metavar="PX", default=224, help="side of the encoder's input views (default: %(default)s)")
    output_argument(p, "--out", folder=True, default=None, metavar="DIR",
                    help="keep the run directories here (default: a temporary folder)")
    output_argument(p, "--json", default=None, metavar="FILE", help="write the results as JSON")
    output_argument(p, "--markdown", default=None, metavar="FILE", help="write the table as Markdown")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--progress", action="store_true", help="show training progress bars")


def run(args: argparse.Namespace) -> int:
    """``gancr bench quality``: train, score, print the table (and write JSON/Markdown)."""
    from gancr.evaluation import parse_encoder, write_json

    import shlex

    command = ["gancr", "bench", "quality", "--spec", *args.specs, "--steps", str(args.steps), "--size", str(args.size),
               "--batch-size", str(args.batch_size), "--max-width", str(args.max_width), "--seed", str(args.seed),
               "--feature-size", str(args.feature_size), "--holdout", args.holdout]
    if args.encoder:
        command += ["--encoder", args.encoder]
    result = bench_quality(
        args.specs, steps=args.steps, size=args.size, batch_size=args.batch_size, max_width=args.max_width,
        seed=args.seed, holdout=args.holdout, out_dir=args.out, encoder=parse_encoder(args.encoder), feature_size=args.feature_size,
        device=args.device, quiet=not args.progress, log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    result["command"] = shlex.join(command)
    print(quality_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown:
        atomic_write_text(args.markdown, quality_markdown(result) + "\n")
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0
