"""How far a generator gets on the known-target benchmark when it is shown the answers.

    python benchmarks/supervised_bound.py [--spec examples/quickstart.yaml] [--steps 2400]
                                          [--loss l1|mse] [--lr 1e-3] [--checks 8]
                                          [--json bound.json] [--grid bound.png]

A diagnostic, not a method: it trains the spec's generator (as ``gancr bench quality``
builds it) on *paired* crops of ``builtin:photos`` and their true cartoons
(``builtin:cartoon``), the same crop and flip for both (the trainer's augmentation, on the
pair stacked), with an L1 or MSE loss and Adam; scores it ``--checks`` times along the way on
``builtin:holdout`` against ``builtin:holdout_cartoon`` exactly as the benchmark does, next to
``G(x) = x``, and reports the best check (the fit peaks early, then learns the seven training
photographs). An unpaired GAN trained on the same photographs cannot be expected to beat
this figure: it is the ceiling of the generator and the training set, not of the adversarial
method. Nothing in gancr trains on the answers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gancr import build  # noqa: E402
from gancr.bench.quality import (  # noqa: E402
    DEFAULT_BATCH,
    DEFAULT_MAX_WIDTH,
    DEFAULT_SIZE,
    TARGET_METRICS,
    differences_from_identity,
    prepare_spec,
)
from gancr.data import DeviceAugment, load_image, resolve_source, save_image  # noqa: E402
from gancr.data.resize import resize  # noqa: E402
from gancr.evaluation import evaluate, write_json  # noqa: E402


def paired_images(load_size: int) -> list[torch.Tensor]:
    """Each training photograph stacked with its cartoon: ``(6, H, W)``, shorter side ``load_size``."""
    photos, cartoons = resolve_source("builtin:photos"), resolve_source("builtin:cartoon")
    pairs = []
    for p, c in zip(photos, cartoons, strict=True):
        x, t = load_image(p), load_image(c)
        if x.shape != t.shape:
            raise SystemExit(f"{p.name} and {c.name} differ in size: not a photograph and its cartoon")
        pairs.append(resize(torch.cat([x, t]), scale=load_size / min(x.shape[-2:])))
    return pairs


def crop_batch(pairs: list[torch.Tensor], augment: DeviceAugment, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` crops of random pairs, the same crop and flip from a photograph and its cartoon:
    ``(B, 3, S, S)`` each. Uses torch's global random generator."""
    drawn = [pairs[int(torch.randint(len(pairs), ()))] for _ in range(batch)]
    both = torch.cat([augment(pair[None]) for pair in drawn])  # sizes differ: one at a time
    return both[:, :3], both[:, 3:]


@torch.no_grad()
def save_grid(generator: torch.nn.Module, longer_side: int, path: Path) -> None:
    """One row per held-out photograph: input | ``generator(input)`` | true cartoon, longer side ``longer_side``."""
    rows = []
    for p, c in zip(resolve_source("builtin:holdout"), resolve_source("builtin:holdout_cartoon"), strict=True):
        x, t = load_image(p), load_image(c)
        x, t = (resize(i[None], scale=longer_side / max(x.shape[-2:])) for i in (x, t))
        rows.append(torch.cat([x, generator(x).clamp(0, 1), t], dim=3))
    width = max(r.shape[-1] for r in rows)
    save_image(torch.cat([F.pad(r, (0, width - r.shape[-1]), value=1.0) for r in rows], dim=2), path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default="examples/quickstart.yaml", help="whose generator to fit")
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="crop side (the benchmark's default)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=("l1", "mse"), default="l1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature-size", type=int, default=224, help="as gancr bench quality's")
    p.add_argument("--checks", type=int, default=8, help="score the fit this many times along the way")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", type=Path, help="write the result here")
    p.add_argument("--grid", type=Path, help="write input | fitted | true cartoon of the best check here (PNG)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    spec, changes = prepare_spec(a.spec, steps=a.steps, size=a.size, batch_size=a.batch_size,
                                 max_width=DEFAULT_MAX_WIDTH, seed=a.seed, device="cpu")
    generator = build(spec).generator
    data = spec["data"]
    pairs = paired_images(data.get("load_size") or round(1.125 * a.size))
    augment = DeviceAugment(a.size, crop_scale=tuple(data.get("crop_scale") or (0.5, 1.0)))
    opt = torch.optim.Adam(generator.parameters(), lr=a.lr, betas=(0.5, 0.999))
    loss_fn = F.l1_loss if a.loss == "l1" else F.mse_loss
    scoring = dict(max_size=3 * a.size, feature_size=a.feature_size, per_image=True, device="cpu")
    sets = ("builtin:holdout", "builtin:cartoon", "builtin:holdout_cartoon")
    identity = evaluate(lambda x: x, *sets, **scoring)
    psnr_key = TARGET_METRICS[0][0]
    checks: list[dict] = []  # the scores along the way: the fit peaks, then overfits the 7 photographs
    best: dict | None = None
    every = max(1, a.steps // a.checks)
    train_s = 0.0
    for step in range(a.steps):
        t0 = time.perf_counter()
        generator.train()
        x, t = crop_batch(pairs, augment, a.batch_size)
        loss = loss_fn(generator(x), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        train_s += time.perf_counter() - t0
        if (step + 1) % every == 0 or step + 1 == a.steps:
            with torch.no_grad():
                fitted = evaluate(generator.eval(), *sets, **scoring)
            diff = differences_from_identity(fitted, identity)
            checks.append({"step": step + 1, "loss": loss.item(), "fitted": fitted, "vs_identity": diff})
            if best is None or diff[psnr_key]["mean"] > best["vs_identity"][psnr_key]["mean"]:
                best = checks[-1]
                if a.grid:
                    save_grid(generator, 3 * a.size, a.grid)
            print(f"step {step + 1}: {a.loss} {loss.item():.4f}; vs identity "
                  + ", ".join(f"{label} {diff[key]['mean']:+.3f}" for key, _, label in TARGET_METRICS), flush=True)

    assert best is not None  # the last step is always a check
    print(f"{Path(a.spec).stem}'s generator fitted to the true cartoons ({a.loss}, {a.steps} steps, "
          f"{train_s:.0f} s of training; {'; '.join(changes)}); best PSNR at step {best['step']}:")
    for key, _, label in TARGET_METRICS:
        d = best["vs_identity"][key]
        per = ", ".join(f"{name} {v:+.3f}" for name, v in d["per_image"].items())
        print(f"  {label:8s} identity {identity['metrics'][key]['value']:.3f}  fitted "
              f"{best['fitted']['metrics'][key]['value']:.3f}  mean {d['mean']:+.3f}  ({per})")
    if a.json:
        write_json({"spec": a.spec, "steps": a.steps, "loss": a.loss, "lr": a.lr, "train_seconds": round(train_s, 1),
                    "changes": changes, "identity": identity, "best_step": best["step"], "checks": checks}, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
