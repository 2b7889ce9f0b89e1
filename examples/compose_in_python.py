"""Compose a gancr variant in Python: a custom neck, a custom content loss, a spec as a dict.

Two ways to add a component without writing a plugin package:

* ``gancr.registry.register(kind, name, factory, params=...)`` registers it for the rest of
  the process (here: a neck, ``gated_res``);
* a plugin *object* with a ``gancr_register_components`` hook, registered for the duration
  of a ``with gancr.registered_plugin(...)`` block (here: a content loss, ``luma``) -- the
  way a test adds a component and takes it away again.

Either way the component is validated like a built-in (a typo in its parameters is an error
with its path), appears in ``gancr.list_components`` and can be named in any spec. A package
that others install would register the same functions through the ``gancr`` entry-point group
instead (see the plugin guide).

Run it (a real run wants a few hundred steps; ``--steps 3`` just shows that it works)::

    python examples/compose_in_python.py --steps 300 --out runs/composed
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

import gancr
from gancr.components.base import ContentLoss, LossContext
from gancr.registry import ComponentParams

# --------------------------------------------------------------------------------------
# 1. A neck, registered from plain Python with gancr.registry.register
# --------------------------------------------------------------------------------------


class GatedResParams(ComponentParams):
    blocks: int = Field(2, ge=1, description="gated residual blocks")
    gate_init: float = Field(0.1, ge=0, description="initial gate of every channel")


class GatedResNeck(nn.Module):
    """Residual blocks whose updates pass a learned per-channel gate: ``x + g * f(x)``.

    With small initial gates the neck starts close to the identity, so the decoder first
    learns to reconstruct and the style is added gradually (as in LayerScale).
    """

    def __init__(self, channels: int, blocks: int = 2, gate_init: float = 0.1):
        super().__init__()
        # a neck states its channels so that the builder can size the decoder
        self.in_channels = self.out_channels = channels
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
                nn.InstanceNorm2d(channels, affine=True),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            )
            for _ in range(blocks)
        )
        self.gates = nn.Parameter(torch.full((blocks, channels, 1, 1), float(gate_init)))

    def forward(self, x: Tensor) -> Tensor:
        for block, gate in zip(self.blocks, self.gates):
            x = x + gate * block(x)
        return x


gancr.registry.register("neck", "gated_res", GatedResNeck, params=GatedResParams)

# --------------------------------------------------------------------------------------
# 2. A content loss, in a plugin object registered for a `with` block
# --------------------------------------------------------------------------------------


class LumaParams(ComponentParams):
    blur: int = Field(2, ge=0, description="box-blur radius before comparing (0: none)")


class LumaLoss(ContentLoss):
    """L1 between the (blurred) luma of ``x`` and ``y``: keeps the shading, lets colours go."""

    def __init__(self, blur: int = 2):
        super().__init__()
        self.blur = blur
        self.register_buffer("rgb", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def _luma(self, img: Tensor) -> Tensor:
        y = (img * self.rgb).sum(1, keepdim=True)
        if self.blur:
            k = 2 * self.blur + 1
            y = F.avg_pool2d(F.pad(y, [self.blur] * 4, mode="replicate"), k, stride=1)
        return y

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        return F.l1_loss(self._luma(y), self._luma(x))


class ComposeExamplePlugin:
    """A plugin is any object with hook implementations marked ``@gancr.hookimpl``."""

    @gancr.hookimpl
    def gancr_register_components(self, registry):
        registry.register("content_loss", "luma", LumaLoss, params=LumaParams)


# --------------------------------------------------------------------------------------
# 3. The spec, as a dict: the same structure as a YAML spec
# --------------------------------------------------------------------------------------


def make_spec(steps: int, image_size: int, batch_size: int) -> dict:
    separate = max(1, steps // 5)
    joint = max(1, steps - separate)
    return {
        "description": "conv encoder > gated residual neck (custom) > U-Net; L1 + luma (custom) content",
        "model": {
            "generator": {
                "encoder": {"name": "conv", "widths": [16, 32, 64]},
                "neck": {"name": "gated_res", "blocks": 2},
                "decoder": {"name": "unet"},
            },
            "content_net": {
                "encoder": {"name": "conv", "widths": [16, 32, 64]},
                "decoder": {"name": "upsample_conv"},
            },
            "discriminator": {"name": "patchgan", "layers": 2, "width": 32},
        },
        "losses": {
            "content": [{"name": "l1", "weight": 0.5}, {"name": "luma", "weight": 2.0, "blur": 2}],
            "style": [{"name": "lsgan", "weight": 1.0}],
        },
        "training": {
            "stages": [
                {"name": "separate", "steps": separate},
                {"name": "joint", "steps": joint, "w_c": 1.0, "w_g": 1.0},
            ],
            # keep the content loss under a target by raising w_c when it is exceeded
            "balancer": {"name": "constraint", "target": 0.08, "step_size": 0.5},
            "batch_size": batch_size,
            "image_size": image_size,
            "optimizer": {"lr": {"generator": 3e-4, "content_net": 1e-3, "discriminator": 2e-4}},
            "ema": {"decay": 0.98},
            "sample_every": 100,
            "checkpoint": {"every": 200, "keep": 2},
        },
        "data": {"content": "builtin:photos", "style": "builtin:cartoon", "style_hue": 0.25},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps in all (at least 2)")
    parser.add_argument("--out", default="runs/composed", help="the run directory")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (one per stage)")
    out = Path(args.out)

    with gancr.registered_plugin(ComposeExamplePlugin(), "compose-example"):
        # validated against the registry as it is now: both custom components included
        spec = gancr.load_spec(make_spec(args.steps, args.image_size, args.batch_size))
        print("necks:", ", ".join(gancr.list_components("neck")))
        print("content losses:", ", ".join(gancr.list_components("content_loss")))
        result = gancr.Trainer(spec, out, quiet=args.quiet).fit()
    print(f"trained {result.step} steps ({result.status}); weights in {result.generator}")

    # The saved spec names `gated_res`, so loading it needs that neck registered (it still
    # is: gancr.registry.register lasts for the process). The luma loss is not needed.
    generator = gancr.load_generator(out)
    from gancr.data import load_image, resolve_source, save_image
    from gancr.data.resize import resize

    photo = load_image(resolve_source("builtin:holdout")[0])  # a photograph training never saw
    photo = resize(photo, scale=256 / max(photo.shape[-2:]))
    stylised = gancr.stylize_tensor(generator, photo)  # (3, H, W) in [0, 1], same size
    path = save_image(torch.cat([photo, stylised], dim=-1), out / "compose_example.png")
    print(f"input | stylised: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
