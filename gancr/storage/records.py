"""What gancr stores, as typed records: a training :class:`Checkpoint` and the :class:`InferenceWeights`
of a ``generator.safetensors``. Their file layouts are defined here, and only here.

A checkpoint (``checkpoints/step_N.pt``, written with ``torch.save``, read back with
``torch.load(weights_only=True)``) holds plain data and tensors, never objects::

    format       "gancr.checkpoint"
    version      2 (CHECKPOINT_VERSION)
    step         the global step it was taken after
    models       {"generator": state dict, "content_net": ..., "discriminator": ...}
    ema          the EMA generator's state dict ({} when the run keeps none)
    losses       the loss modules' state dict (learned weights, e.g. uncertainty weights)
    optimizers   {"generator": ..., "content_net": ..., "discriminator": ...} optimiser states
    scaler, pool, rng, nonfinite, stage    the rest of a resume: AMP scaler, image pool,
                 random states, the count of skipped steps in a row, the stage
    spec         the resolved spec, as plain data
    checksum     SHA-256 of all the above (gancr.storage.integrity.checksum)

Version 1 (gancr 0.1 and 0.2 before the record) kept ``models`` as the trio's own state dict,
``{"generator.<key>": ..., "content_net.<key>": ..., "discriminator.<key>": ...}``, so the trio's
attribute names were the file format; it still loads (:meth:`Checkpoint.from_data`).

A generator file is safetensors: the tensors ``generator/<key>``, ``ema/<key>`` and
``content_net/<key>`` (safetensors keys are flat), and the metadata ``format``
(``"gancr.generator"``), ``version``, ``spec`` (JSON), ``step``, ``ema``, ``exported`` and a
``checksum`` of tensors and metadata.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gancr.errors import CheckpointError
from gancr.storage.files import atomic_write_bytes, atomic_write_stream
from gancr.storage.integrity import MAX_DEPTH, Overrun, checksum, nonfinite, overrun
from gancr.storage.reader import read_file

if TYPE_CHECKING:  # torch loads when a record is written or read, not on import
    from torch import Tensor

__all__ = [
    "Checkpoint",
    "InferenceWeights",
    "NETS",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "GENERATOR_FORMAT",
    "GENERATOR_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "save_generator",
    "generator_file_bytes",
    "read_generator_file",
]

StateDict = dict[str, "Tensor"]

CHECKPOINT_FORMAT = "gancr.checkpoint"
#: The checkpoint layout written now; 1 and 2 are read.
CHECKPOINT_VERSION = 2
GENERATOR_FORMAT = "gancr.generator"
GENERATOR_VERSION = 1

#: The trio's networks, as a checkpoint names them.
NETS = ("generator", "content_net", "discriminator")

#: The sections of a generator file, in the order of its tensors' key prefixes (``generator/...``).
_GENERATOR_SECTIONS = ("generator", "ema", "content_net")


# ----------------------------------------------------------------------------------------
# the training checkpoint
# ----------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """Everything a resume needs, as data (tensors, numbers, strings and containers of them).

    Attributes:
        step: the global step the checkpoint was taken after.
        spec: the resolved spec, as plain data.
        generator, content_net, discriminator: the networks' state dicts.
        ema: the EMA generator's state dict, or None when the run keeps none.
        losses: the loss modules' state dict.
        optimizers: each optimiser's state dict, by network name.
        scaler: the AMP gradient scaler's state ({} when unused).
        pool: the image pool's state.
        rng: the random states (:func:`gancr.training.resume.get_rng_state`).
        nonfinite: how many steps in a row were skipped for non-finite losses.
        stage: the index of the stage the step belonged to.
    """

    step: int
    spec: dict[str, Any]
    generator: StateDict
    content_net: StateDict
    discriminator: StateDict
    ema: StateDict | None = None
    losses: StateDict = field(default_factory=dict)
    optimizers: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    nonfinite: int = 0
    stage: int = 0

    def to_data(self) -> dict[str, Any]:
        """The file's content (layout version :data:`CHECKPOINT_VERSION`), without its checksum."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # not asdict: it copies every tensor
        models = {name: data.pop(name) for name in NETS}
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **data, "models": models,
                "ema": self.ema or {}}

    @classmethod
    def from_data(cls, data: Any, path: str | os.PathLike[str]) -> Checkpoint:
        """The record of a file's content (layout 1 or 2), checked: its spec's shape (by the limits of
        any spec, whatever the checksum says: a checksum proves that the file is the one that was
        written, not that its writer was friendly), the shape of the rest, its checksum (when it
        has one: files of gancr 0.1 have none) and its structure. Shapes come first: the checksum
        walks every value, aliases expanded.

        Raises:
            CheckpointError: not a gancr checkpoint, corrupt, or of a newer layout; the message names ``path``.
        """
        if not isinstance(data, dict) or "models" not in data or "step" not in data:
            raise CheckpointError(f"{path} is not a gancr checkpoint (no models/step)")
        found = overrun(data.get("spec"))
        if found is not None:
            raise CheckpointError(f"{path}: its stored spec {_place(found, 'spec')}; not a spec gancr wrote")
        found = overrun(data)
        if found is not None:
            raise CheckpointError(f"{path}: its content {_place(found)}; not a file gancr wrote")
        data = dict(data)
        if "checksum" in data:
            _verify(path, data.pop("checksum"), checksum(data))
        version = data.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= CHECKPOINT_VERSION:
            raise CheckpointError(f"{path} has checkpoint layout version {version!r}; this gancr reads versions 1 to "
                                  f"{CHECKPOINT_VERSION} (a newer gancr wrote it?)")
        models = data["models"]
        if not isinstance(models, dict):
            raise CheckpointError(f"{path} is not a gancr checkpoint (its models are not a mapping)")
        nets = _split_trio_state(models, path) if version == 1 else models
        if any(not isinstance(nets.get(name), dict) for name in NETS):
            raise CheckpointError(f"{path} is not a gancr checkpoint (its models are not {', '.join(NETS)})")
        if "spec" not in data:
            raise CheckpointError(f"{path} has no spec: it was not written by gancr's trainer")
        return cls(
            step=int(data["step"]), spec=_stored_spec(path, data["spec"]),
            **{name: nets[name] for name in NETS},
            ema=data.get("ema") or None, losses=data.get("losses") or {}, optimizers=data.get("optimizers") or {},
            scaler=data.get("scaler") or {}, pool=data.get("pool") or {}, rng=data.get("rng") or {},
            nonfinite=int(data.get("nonfinite", 0)), stage=int(data.get("stage", 0)),
        )

    def inference_weights(self, path: str | os.PathLike[str] | None = None) -> InferenceWeights:
        """What inference needs of this checkpoint (read from ``path``)."""
        return InferenceWeights(self.spec, self.generator, self.ema, self.content_net, step=self.step,
                                path=Path(path) if path is not None else None)


def _split_trio_state(models: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Layout 1's ``models``: the trio's state dict, ``<net>.<key>``, split by network."""
    nets: dict[str, dict[str, Any]] = {name: {} for name in NETS}
    for key, value in models.items():
        name, _, rest = str(key).partition(".")
        if name not in nets or not rest:
            raise CheckpointError(f"{path} is not a gancr checkpoint (its models hold {key!r}, not a key of "
                                  f"{', '.join(NETS)})")
        nets[name][rest] = value
    return nets


def _place(found: Overrun, top: str = "") -> str:
    """``nests more than 64 levels deep (at spec.model...)``: the limit a file's data passes, and where."""
    where = ".".join(p for p in (top, found.where()) if p)
    return found.describe() + (f" (at {where})" if where else "")


def _verify(path: str | os.PathLike[str], stored: Any, actual: str) -> None:
    if stored != actual:
        raise CheckpointError(
            f"{path} is corrupt: its content does not match the checksum stored in it (a changed byte on "
            "disk or in transfer); gancr does not load it"
        )


def _stored_spec(path: str | os.PathLike[str], spec: Any) -> dict[str, Any]:
    """A stored spec is data (a mapping), never a path to follow."""
    if not isinstance(spec, dict):
        raise CheckpointError(
            f"{path}: its stored spec is a {type(spec).__name__}, not a mapping; not a file gancr wrote"
        )
    return spec


def _tensor_bytes(data: Any) -> int:
    """The bytes of every tensor in a tree of plain data (about a file's size)."""
    import torch

    total, stack = 0, [data]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            total += x.numel() * x.element_size()
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return total


def save_checkpoint(path: str | os.PathLike[str], record: Checkpoint) -> Path:
    """Write ``record`` to ``path``, atomically, with its checksum.

    Raises:
        WriteError: the disk is full or the place not writable (no partial file is left;
            older checkpoints are untouched).
    """
    import torch

    data = record.to_data()
    data["checksum"] = checksum(data)
    return atomic_write_stream(path, lambda fh: torch.save(data, fh), needed=_tensor_bytes(data))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Checkpoint:
    """Read a checkpoint (:func:`gancr.storage.reader.read_file`) and check it (:meth:`Checkpoint.from_data`).

    Raises:
        CheckpointError: missing, truncated or corrupt, holding arbitrary objects, an exported
            model instead of a checkpoint, or not a gancr checkpoint.
    """
    stored = read_file(path, "checkpoint", map_location=map_location)
    return Checkpoint.from_data(stored.data, stored.path)


# ----------------------------------------------------------------------------------------
# the inference file: generator.safetensors
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceWeights:
    """What inference needs of a run: the generator's weights and the spec that builds it.

    Attributes:
        spec: the resolved spec stored with the weights, as plain data (not validated here).
        generator: the generator's state dict.
        ema: the EMA generator's state dict, or None when the run kept none.
        content_net: the content net's state dict (empty when the file holds none).
        step: the step the weights are of, when known.
        exported: written by ``gancr export`` (the generator alone).
        uses_ema: (an exported file) its generator weights are the run's EMA weights.
        path: the file they were read from, if any.
    """

    spec: dict[str, Any]
    generator: StateDict
    ema: StateDict | None = None
    content_net: StateDict = field(default_factory=dict)
    step: int | None = None
    exported: bool = False
    uses_ema: bool = False
    path: Path | None = None

    def to_safetensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """The generator file's tensors and metadata (without its checksum)."""
        tensors: dict[str, Tensor] = {}
        for section in _GENERATOR_SECTIONS:
            for key, value in (getattr(self, section) or {}).items():
                value = value.detach().to("cpu").contiguous()
                # a shared encoder (share_encoder: true) is in two sections: safetensors refuses
                # tensors that share memory, so the content net's get their own copy
                tensors[f"{section}/{key}"] = value.clone() if section == "content_net" else value
        extra: dict[str, Any] = {"ema": bool(self.ema) or self.uses_ema}
        if self.step is not None:
            extra["step"] = self.step
        if self.exported:
            extra["exported"] = True
        metadata = {"format": GENERATOR_FORMAT, "version": str(GENERATOR_VERSION), "spec": json.dumps(self.spec)}
        metadata.update({key: json.dumps(value) for key, value in extra.items()})
        return tensors, metadata

    @classmethod
    def from_safetensors(cls, tensors: dict[str, Tensor], metadata: dict[str, str],
                         path: str | os.PathLike[str]) -> InferenceWeights:
        """The record of a generator file's tensors and metadata, checked (checksum when it has
        one — files of gancr 0.1 have none —, format, metadata nesting, spec)."""
        if metadata.get("format") != GENERATOR_FORMAT or "spec" not in metadata:
            raise CheckpointError(f"{path} is not a gancr generator file (no spec in its metadata)")
        if "checksum" in metadata:
            _verify(path, metadata["checksum"], _generator_checksum(tensors, metadata))
        meta: dict[str, Any] = {key: _json_value(value) for key, value in metadata.items()}
        if meta["spec"] is None:  # JSON too deep for the parser
            raise CheckpointError(
                f"{path}: its metadata nests more than {MAX_DEPTH} levels deep; not a file gancr wrote")
        found = overrun(meta)  # the limits of any spec
        if found is not None:
            raise CheckpointError(f"{path}: its metadata {_place(found)}; not a file gancr wrote")
        sections = {s: {k[len(s) + 1:]: v for k, v in tensors.items() if k.startswith(f"{s}/")}
                    for s in _GENERATOR_SECTIONS}
        step = meta.get("step")
        exported = meta.get("exported") is True
        return cls(_stored_spec(path, meta["spec"]), sections["generator"], sections["ema"] or None,
                   sections["content_net"], step=step if isinstance(step, int) else None, exported=exported,
                   uses_ema=exported and meta.get("ema") is True, path=Path(path))


def _generator_checksum(tensors: dict[str, Tensor], metadata: dict[str, str]) -> str:
    return checksum({"tensors": tensors, "metadata": {k: v for k, v in metadata.items() if k != "checksum"}})


def _json_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
    except RecursionError:
        return None  # reported by the depth check of its reader


def generator_file_bytes(weights: InferenceWeights, path: str | os.PathLike[str] = "the generator file") -> bytes:
    """The bytes of a generator file (see :func:`save_generator`); ``path`` names it in errors."""
    from safetensors.torch import save

    tensors, metadata = weights.to_safetensors()
    bad = nonfinite(tensors)
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: {len(bad)} of its {len(tensors)} tensors hold NaN or infinite values "
            f"(e.g. {', '.join(bad[:3])}); the training diverged, lower the learning rates or loss weights"
        )
    metadata["checksum"] = _generator_checksum(tensors, metadata)
    return save(tensors, metadata=metadata)


def save_generator(path: str | os.PathLike[str], weights: InferenceWeights) -> Path:
    """Write ``weights`` as a generator file, atomically, with a checksum of everything.

    Raises:
        CheckpointError: a tensor holds NaN or infinity (such a generator stylises to black).
        WriteError: the disk is full or the place not writable (the old file stays).
    """
    return atomic_write_bytes(path, generator_file_bytes(weights, path))


def read_generator_file(path: str | os.PathLike[str]) -> InferenceWeights:
    """A generator file's weights and spec, checked (see :meth:`InferenceWeights.from_safetensors`).

    Raises:
        CheckpointError: missing, unreadable, too big for the free memory, corrupt, or not a
            gancr generator file.
    """
    stored = read_file(path, "generator file")
    if stored.format != "safetensors":
        raise CheckpointError(f"{stored.path} is not a gancr generator file (not safetensors)")
    return InferenceWeights.from_safetensors(stored.data, stored.metadata, stored.path)
