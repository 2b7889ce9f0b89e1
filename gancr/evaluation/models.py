"""The models of an evaluation: the generator (from a run, a trainer, a trio or a module), the
content net, and the encoder of the feature metrics (random weights from a fixed seed unless pretrained)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gancr.builder import build_component
from gancr.errors import GancrError
from gancr.inference import open_run
from gancr.trio import Trio

__all__ = ["DEFAULT_ENCODER", "ENCODER_SEED", "parse_encoder", "build_encoder", "Models", "resolve_models"]

#: The encoder of the perceptual, Gram and (fallback) KID/FID features when none is named.
DEFAULT_ENCODER: dict[str, Any] = {"name": "vgg19", "layer": "relu3_1"}

#: The seed of an encoder's random weights (so random-feature metrics are repeatable).
ENCODER_SEED = 0


def parse_encoder(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """An encoder spec from a mapping, YAML/JSON text (``{name: vgg19, layer: relu3_1}``) or a file.

    Raises:
        GancrError: the text is neither a mapping nor a file holding one.
    """
    if value is None:
        return dict(DEFAULT_ENCODER)
    if isinstance(value, Mapping):
        return dict(value)
    import yaml

    text = str(value)
    path = Path(text).expanduser()
    if "{" not in text and "\n" not in text and path.is_file():
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GancrError(f"--encoder: not YAML or JSON ({str(exc).splitlines()[0]}): {value!r}") from None
    if isinstance(data, str):  # just a name: vgg19
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise GancrError(
            f"--encoder: expected a mapping with a name, e.g. '{{name: vgg19, layer: relu3_1}}', got {value!r}"
        )
    return data


def build_encoder(spec: Mapping[str, Any], device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder (eval, no grad) and its description: name, layers, pretrained, seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ENCODER_SEED)
        encoder = build_component("encoder", dict(spec))
    encoder.eval().requires_grad_(False).to(device)
    pretrained = bool(getattr(encoder, "pretrained", False))
    layers = [f.name for f in getattr(encoder, "feature_info", [])]
    info: dict[str, Any] = {
        "encoder": dict(spec),
        "layers": layers,
        "pretrained": pretrained,
        "description": f"{spec['name']} ({', '.join(layers)})" + ("" if pretrained else f", random weights (seed {ENCODER_SEED})"),
    }
    if not pretrained:
        info["seed"] = ENCODER_SEED
    return encoder, info


@dataclass
class Models:
    """What an evaluation runs: the generator, the content net (or why there is none), and
    where they came from."""

    generator: nn.Module
    content_net: nn.Module | None
    content_net_note: str
    checkpoint: str | None
    uses_ema: bool | None
    spec: Any


def resolve_models(generator_or_run: Any, content_net: Any, ema: bool, device: torch.device) -> Models:
    """A run directory / weights file, a Trainer, a Trio or a generator -> the models to evaluate."""
    if isinstance(generator_or_run, (str, os.PathLike)):
        run = open_run(generator_or_run)  # read once, for the generator and the content net
        generator = run.generator(ema=ema, device=device)
        spec = generator.spec
        note = ""
        if content_net is None:
            if spec.model.content_net.train:
                content_net = run.content_net(device=device)
            else:
                note = "the run has no content-retention net (model.content_net.train: false)"
        return Models(generator, content_net, note, str(generator.weights_path), generator.uses_ema, spec)
    if hasattr(generator_or_run, "inference_generator") and hasattr(generator_or_run, "content_net"):
        trainer = generator_or_run
        note = ""
        if content_net is None:
            if trainer.train_content_net:
                content_net = trainer.content_net
            else:
                note = "the run has no content-retention net (model.content_net.train: false)"
        return Models(trainer.inference_generator(), content_net, note, str(trainer.out_dir),
                       trainer.ema is not None, trainer.spec)
    if isinstance(generator_or_run, Trio):
        spec = generator_or_run.spec
        note = ""
        cn = content_net
        if cn is None:
            if spec is not None and not spec.model.content_net.train:
                note = "the trio has no content-retention net (model.content_net.train: false)"
            else:
                cn = generator_or_run.content_net
        return Models(generator_or_run.generator, cn, note, None, None, spec)
    if isinstance(generator_or_run, nn.Module) or callable(generator_or_run):
        note = "" if content_net is not None else "no content net given"
        return Models(generator_or_run, content_net, note, None, getattr(generator_or_run, "uses_ema", None),
                       getattr(generator_or_run, "spec", None))
    raise GancrError(
        "evaluate: expected a run directory, a weights file, a Trainer, a Trio or a generator module, "
        f"got {type(generator_or_run).__name__}"
    )
