"""Helpers for the inference tests (tiling, alpha, export): tiny run files without training.

:func:`write_run` builds a trio from a tiny model spec and writes the ``generator.safetensors``
a finished training run would hold (``generator/``, ``ema/``, ``content_net/`` with the spec),
so a test gets a loadable "run" in a fraction of a second. The EMA weights are the raw ones
slightly perturbed, so that ``--ema`` and ``--no-ema`` give different images.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import gancr
from gancr.cli import main
from gancr.storage import InferenceWeights, save_generator

#: A tiny generator (reduction 4, instance norm, U-Net skips) and a content net of its own.
TINY_IN_MODEL: dict[str, Any] = {
    "generator": {
        "encoder": {"name": "conv", "widths": [8, 16, 16]},
        "neck": {"name": "resblocks", "blocks": 1},
        "decoder": {"name": "unet"},
    },
    "content_net": {"encoder": {"name": "conv", "widths": [8, 16]}, "decoder": {"name": "upsample_conv"}},
    "discriminator": {"name": "patchgan", "layers": 2, "width": 8},
}


def tiny_spec(model: dict[str, Any] | None = None, **content_net: Any) -> dict[str, Any]:
    model = dict(model or TINY_IN_MODEL)
    if content_net:
        model["content_net"] = {**model["content_net"], **content_net}
    return {"model": model, "training": {"image_size": 32}}


def write_run(run: Path, spec: dict[str, Any] | None = None, *, ema: bool = True, seed: int = 0) -> Path:
    """A run directory with a ``generator.safetensors`` of random weights; returns ``run``."""
    torch.manual_seed(seed)
    spec = spec or tiny_spec()
    trio = gancr.build(spec)
    # a little structure, so that images are not flat grey: non-trivial norm affine parameters
    with torch.no_grad():
        for m in trio.modules():
            if isinstance(m, torch.nn.InstanceNorm2d) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    generator = trio.generator.state_dict()
    average = {k: v + 0.02 * torch.randn_like(v) if v.is_floating_point() else v.clone() for k, v in generator.items()}
    run.mkdir(parents=True, exist_ok=True)
    save_generator(run / "generator.safetensors", InferenceWeights(
        trio.spec.to_dict(), generator, average if ema else None, trio.content_net.state_dict(), step=0))
    return run


def smooth_image(h: int, w: int, seed: int = 0, noise: float = 0.03) -> torch.Tensor:
    """``(1, 3, h, w)`` in [0, 1]: smooth waves and gradients with a little noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(3, generator=g) * 6
    x = torch.stack([
        0.5 + 0.35 * torch.sin(7 * xx + 4 * yy + phase[0]),
        0.5 + 0.35 * torch.cos(5 * yy - 3 * xx + phase[1]),
        0.2 + 0.6 * xx * yy,
    ])[None]
    return (x + noise * torch.rand(x.shape, generator=g)).clamp(0, 1)


def write_png(path: Path, image: torch.Tensor) -> Path:
    array = (image[0] if image.dim() == 4 else image).permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((array * 255).round().astype(np.uint8)).save(path)
    return path


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``gancr ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()
