"""Loading a trained run for inference: its weights read once, its spec validated once, its nets built.

A trained run is read from its ``generator.safetensors`` (written at the end of training),
or from a checkpoint ``checkpoints/step_N.pt`` (read with ``weights_only=True``). The
spec stored with the weights rebuilds the generator, so no code is ever unpickled.

:func:`open_run` reads a run once (:func:`gancr.storage.read_run`); the :class:`Run` it returns
builds the generator and the content net from that one read, so a caller that needs both
(``gancr stylize --alpha``, ``gancr eval``) reads and validates the run once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gancr.builder import build_component, build_content_net, build_generator
from gancr.devices import resolve_device
from gancr.errors import CheckpointError, SpecError
from gancr.spec import Spec, load_spec
from gancr.storage import InferenceWeights, read_run
from gancr.storage.integrity import nonfinite

__all__ = ["Run", "open_run", "inference_spec", "load_generator", "load_content_net"]


def inference_spec(spec_data: dict[str, Any]) -> Spec:
    """The stored spec, validated; for inference only its model has to validate.

    Losses and the balancer are for training: a run trained with a loss that only a plugin
    (or the training script) registered still loads where that plugin is not installed;
    its losses are then left at their defaults. A model that does not validate is an error.
    A stored spec is data: anything but a mapping is an error (never a path to read).
    """
    if not isinstance(spec_data, dict):
        raise CheckpointError(f"the stored spec is a {type(spec_data).__name__}, not a mapping; not a run gancr wrote")
    try:
        return load_spec(spec_data)
    except SpecError:
        if not isinstance(spec_data, dict):
            raise
        reduced = {k: v for k, v in spec_data.items() if k != "losses"}
        if isinstance(reduced.get("training"), dict):
            reduced["training"] = {k: v for k, v in reduced["training"].items() if k != "balancer"}
        try:
            return load_spec(reduced)
        except SpecError:
            pass
        raise


def _load(module: nn.Module, state: dict[str, Tensor], what: str, path: Path) -> None:
    bad = nonfinite(state)
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} of the {what}'s {len(state)} weight tensors hold NaN or infinite values (e.g. "
            f"{', '.join(bad[:3])}): the run diverged, and this {what} would output NaN (black images)"
        )
    expected = module.state_dict()
    wrong = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{path}: the {what} weights do not match its spec: {len(wrong)} tensor(s) have other shapes, e.g. "
            f"{k} is {tuple(state[k].shape)} in the file and {tuple(expected[k].shape)} in the model"
        )
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the {what} weights do not match its spec: {str(exc).splitlines()[0]}") from None


class Run:
    """A trained run, read once: its weights (:class:`~gancr.storage.InferenceWeights`) and its spec.

    Args:
        weights: what :func:`gancr.storage.read_run` read.
    """

    def __init__(self, weights: InferenceWeights):
        self.weights = weights
        self._spec: Spec | None = None

    @property
    def path(self) -> Path | None:
        """The file the weights were read from (None for weights made in memory)."""
        return self.weights.path

    @property
    def spec(self) -> Spec:
        """The stored spec, validated on first use (see :func:`inference_spec`)."""
        if self._spec is None:
            self._spec = inference_spec(self.weights.spec)
        return self._spec

    @property
    def has_content_net(self) -> bool:
        """Whether the file holds content-net weights (an exported generator file does not)."""
        return bool(self.weights.content_net)

    def generator(self, *, ema: bool = True, device: str | torch.device = "auto") -> nn.Module:
        """The trained generator, in eval mode, with ``.spec``, ``.weights_path`` and ``.uses_ema``.

        Args:
            ema: use the EMA weights when the run kept them (the default for inference).
            device: where to put it: ``auto`` (CUDA when present), ``cpu``, ``cuda`` ...
        """
        w = self.weights
        generator = build_generator(self.spec.model.generator)
        _load(generator, w.ema if (ema and w.ema) else w.generator, "generator", w.path)
        generator.spec = self.spec  # type: ignore[assignment]
        generator.weights_path = w.path  # type: ignore[assignment]
        generator.uses_ema = bool(ema and w.ema)  # type: ignore[assignment]
        return generator.to(resolve_device(device)).eval()

    def content_net(self, *, device: str | torch.device = "auto") -> nn.Module:
        """The trained content-retention net (for reconstructions and feature distances), in eval mode.

        With ``share_encoder: true`` it is built around an encoder of its own, whose weights come
        with the content net's (they are stored under both nets), so no generator is built.
        """
        if not self.has_content_net:
            raise CheckpointError(f"{self.path} holds no content-net weights")
        spec = self.spec
        shared = build_component("encoder", spec.model.generator.encoder) if spec.model.content_net.share_encoder else None
        net = build_content_net(spec, shared)
        _load(net, self.weights.content_net, "content net", self.path)
        return net.to(resolve_device(device)).eval()


def open_run(path: str | os.PathLike[str] | Run) -> Run:
    """A run directory, ``generator.safetensors`` or checkpoint, read once (a :class:`Run` as it is)."""
    return path if isinstance(path, Run) else Run(read_run(path))


def load_generator(path: str | os.PathLike[str] | Run, *, ema: bool = True,
                   device: str | torch.device = "auto") -> nn.Module:
    """The trained generator of a run, in eval mode, with its spec as ``.spec``.

    Args:
        path: a run directory, its ``generator.safetensors``, a checkpoint file, or an :func:`open_run`.
        ema: use the EMA weights when the run kept them (the default for inference).
        device: where to put it: ``auto`` (CUDA when present, as every entry point:
            :func:`gancr.devices.resolve_device`), ``cpu``, ``cuda`` or ``cuda:N``.
    """
    return open_run(path).generator(ema=ema, device=device)


def load_content_net(path: str | os.PathLike[str] | Run, *, device: str | torch.device = "auto") -> nn.Module:
    """The trained content-retention net of a run (for reconstructions and feature distances)."""
    return open_run(path).content_net(device=device)
