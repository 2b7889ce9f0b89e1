"""Render a training report in headless Chromium and check the screenshot (the docs' report check).

    python docs/build_report_screenshot.py                 # tiny run -> docs/images/report.png
    python docs/build_report_screenshot.py --run runs/quickstart --out docs/images/report.png

Without ``--run`` it trains a tiny run (4 steps, 32 px, a few seconds on a CPU) in a temporary
folder. It then writes the run's report with ``gancr report``, takes a screenshot with
Chromium (Debian's ``chromium`` package: ``apt-get install chromium``), and checks the
screenshot: the page rendered (not blank), and its plots and sample grids loaded (the
plots' line colours and the sample images' pixels are on the screen, not broken-image
icons). tests/test_report.py calls :func:`build` when Chromium is present.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Chromium's executable names, in the order they are looked for.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Colours the report's plots always use (matplotlib's first two "tab" colours).
PLOT_COLOURS = ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E))

TINY_SPEC = {
    "model": {
        "generator": {
            "encoder": {"name": "conv", "widths": [8, 16]},
            "neck": {"name": "resblocks", "blocks": 1},
            "decoder": {"name": "upsample_conv"},
        },
        "content_net": {"encoder": {"name": "conv", "widths": [8, 16]}},
        "discriminator": {"name": "patchgan", "layers": 2, "width": 8},
    },
    "training": {
        "image_size": 32,
        "batch_size": 2,
        "stages": [{"name": "separate", "steps": 2}, {"name": "joint", "steps": 2, "w_c": 1.0, "w_g": 1.0}],
        "sample_every": 2,
        "tensorboard": False,
        "device": "cpu",
    },
    "data": {"content": "builtin:photos", "style": "builtin:cartoon", "load_size": 48},
}


def find_chromium() -> str | None:
    """The path of a Chromium executable, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, *, width: int = 1200, height: int = 1600, timeout: float = 120) -> Path:
    """Screenshot a local HTML file with headless Chromium (no network, a throw-away profile)."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gancr-chromium-") as profile:
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-2000:]}")
    return png


def check_screenshot(png: Path, *, width: int = 1200, height: int = 1600, samples: bool = True) -> dict[str, float]:
    """Assert the report rendered: right size, not blank, plots (and ``samples``: sample grids) visible.

    Returns the measured fractions (for messages and the docs).
    """
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    assert image.shape[:2] == (height, width), f"screenshot is {image.shape[1]}x{image.shape[0]}, expected {width}x{height}"
    not_white = float((np.abs(image - 255).sum(-1) > 30).mean())
    assert not_white > 0.03, f"the page looks blank: only {not_white:.1%} of the pixels are not white"
    found = {}
    for colour in PLOT_COLOURS:
        close = np.abs(image - np.array(colour)).sum(-1) < 40
        found["#%02x%02x%02x" % colour] = float(close.mean())
    missing = [c for c, f in found.items() if f < 1e-4]
    assert not missing, f"the plots did not render: no pixels of the line colours {missing} ({found})"
    # sample grids are photos: many distinct, saturated colours that the plots and text lack
    saturation = image.max(-1) - image.min(-1)
    colourful = float((saturation > 60).mean())
    assert colourful > 0.01 or not samples, f"no photographic content (sample grids) on the screen: {colourful:.2%}"
    return {"not_white": not_white, "colourful": colourful, **found}


def train_tiny_run(out: Path) -> Path:
    """A 4-step, 32-pixel run with sample grids and an eval.json (a few seconds on a CPU)."""
    from gancr.evaluation import evaluate, write_json
    from gancr.training import Trainer

    Trainer(TINY_SPEC, out, quiet=True).fit()
    result = evaluate(out, "builtin:holdout", "builtin:cartoon", "builtin:holdout_cartoon",
                      max_size=96, feature_size=32, views=5, kid_subsets=10)
    write_json(result, out / "eval.json")
    return out


def build(png: Path, run: Path | None = None, *, height: int = 1600) -> dict[str, float]:
    """Write the report of ``run`` (a tiny trained run when None), screenshot it to ``png``, check it."""
    from gancr.evaluation.report import write_report

    with tempfile.TemporaryDirectory(prefix="gancr-report-") as tmp:
        run_dir = run if run is not None else train_tiny_run(Path(tmp) / "run")
        html = write_report(run_dir, Path(tmp) / "report" / "index.html")
        # a tall window first so the whole page (samples, eval table) is checked, then the docs' view
        full = screenshot(html, Path(tmp) / "full.png", height=3600)
        measured = check_screenshot(full, height=3600)
        screenshot(html, png, height=height)
        check_screenshot(png, height=height, samples=False)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a run directory (default: train a tiny one)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images" / "report.png")
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args(argv)
    if find_chromium() is None:
        print("Chromium is not installed (apt-get install chromium); nothing checked", file=sys.stderr)
        return 1
    measured = build(args.out, args.run, height=args.height)
    print(f"wrote {args.out}; checks passed: " + ", ".join(f"{k} {v:.3f}" for k, v in measured.items()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
