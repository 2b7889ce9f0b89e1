"""The run directory as data: atomic writes, checkpoints, the generator file, a run read once.

:class:`~gancr.training.Trainer` writes a run directory::

    RUN/spec.yaml                   the resolved spec
    RUN/metrics.jsonl               one line of metrics per logged step
    RUN/checkpoints/step_N.pt       the newest few checkpoints (everything a resume needs)
    RUN/samples/step_N.png          sample grids
    RUN/generator.safetensors       at the end: the generator (and EMA) and content-net weights, with the spec

Inference, export and evaluation read it with :func:`read_run`, once: the weights file is
found (``generator.safetensors``, else the newest checkpoint that loads) and read in one go.

A checkpoint is data, not code: tensors, numbers, strings and containers of them, written
with ``torch.save`` and read back with ``torch.load(weights_only=True)``, so a file that
holds arbitrary Python objects is refused instead of executed. Every file is written to a
temporary name in the same folder and renamed into place, so a run killed at any moment
leaves the last complete checkpoint loadable.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gancr.errors import CheckpointError

if TYPE_CHECKING:  # torch loads when a checkpoint is written or read, not on import
    from torch import Tensor

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "checkpoint_path",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "load_latest_checkpoint",
    "prune_checkpoints",
    "save_generator",
    "read_generator_file",
    "resolve_weights_path",
    "RunWeights",
    "read_run",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path`` (same folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file readable by its owner only; give it the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


# ----------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:07d}.pt"


def save_checkpoint(directory: str | os.PathLike[str], step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``<directory>/step_<step>.pt``, atomically."""
    import torch

    state = {"version": CHECKPOINT_VERSION, "step": step, **state}
    return atomic_write(checkpoint_path(Path(directory), step), lambda p: torch.save(state, p))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``).

    Raises:
        CheckpointError: missing, truncated or corrupt, or holding arbitrary objects.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle raises many kinds
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            raise CheckpointError(
                f"{path} holds Python objects besides tensors and plain data; gancr refuses to "
                "unpickle it (a checkpoint could run code). Only load checkpoints gancr wrote."
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {text.splitlines()[0] if text else ''}") from None
    if not isinstance(state, dict) or "models" not in state or "step" not in state:
        raise CheckpointError(f"{path} is not a gancr checkpoint (no models/step)")
    return state


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_latest_checkpoint(directory: str | os.PathLike[str], map_location: Any = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that loads, with its state (corrupt ones are skipped)."""
    for step, path in reversed(list_checkpoints(directory)):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint {path.name}: {exc}", stacklevel=2)
    return None


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint in ``directory`` that loads, or None (corrupt ones are skipped)."""
    found = load_latest_checkpoint(directory)
    return found[0] if found else None


def prune_checkpoints(directory: str | os.PathLike[str], keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; returns the deleted paths."""
    found = list_checkpoints(directory)
    removed = []
    for _, path in found[:-keep] if keep > 0 else found:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# ----------------------------------------------------------------------------------------
# the inference file: generator.safetensors
# ----------------------------------------------------------------------------------------


def save_generator(path: str | os.PathLike[str], tensors: dict[str, Tensor], spec: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> Path:
    """Write the inference weights (``generator/``, ``ema/``, ``content_net/`` prefixes) with the spec."""
    from safetensors.torch import save_file

    metadata = {"format": "gancr.generator", "version": str(CHECKPOINT_VERSION), "spec": json.dumps(spec)}
    for key, value in (extra or {}).items():
        metadata[key] = json.dumps(value)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def read_generator_file(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata (``spec`` parsed) of a ``generator.safetensors`` file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no generator file at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    if metadata.get("format") != "gancr.generator" or "spec" not in metadata:
        raise CheckpointError(f"{path} is not a gancr generator file (no spec in its metadata)")
    meta: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return tensors, meta


# ----------------------------------------------------------------------------------------
# a run, read once
# ----------------------------------------------------------------------------------------


def resolve_weights_path(path: str | os.PathLike[str]) -> Path:
    """A run directory, ``generator.safetensors`` or a checkpoint ``.pt`` -> the file to read.

    A run directory gives its ``generator.safetensors`` when training finished, else its
    newest complete checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "generator.safetensors").is_file():
            return p / "generator.safetensors"
        ckpt = latest_checkpoint(p / "checkpoints")
        if ckpt is None:
            raise CheckpointError(f"{p} holds neither generator.safetensors nor a checkpoint in checkpoints/")
        return ckpt
    if not p.is_file():
        raise CheckpointError(f"no run directory, generator file or checkpoint at {p}")
    return p


@dataclass(frozen=True)
class RunWeights:
    """What inference needs of a run, read from one file.

    Attributes:
        path: the file that was read (``generator.safetensors`` or a checkpoint).
        spec: the resolved spec stored with the weights, as plain data (not validated here).
        generator: the generator's state dict.
        ema: the EMA generator's state dict, or None when the run kept none.
        content_net: the content net's state dict (empty when the file holds none).
    """

    path: Path
    spec: dict[str, Any]
    generator: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    content_net: dict[str, Tensor]


def read_run(path: str | os.PathLike[str]) -> RunWeights:
    """Read the weights and spec of a run directory, ``generator.safetensors`` or checkpoint, once.

    A run directory gives its ``generator.safetensors`` when training finished, else its
    newest checkpoint that loads (corrupt ones are skipped with a warning).

    Raises:
        CheckpointError: nothing to read there, an unreadable or unsafe file, or no spec in it.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "generator.safetensors").is_file():
            return _generator_file_weights(p / "generator.safetensors")
        found = load_latest_checkpoint(p / "checkpoints")
        if found is None:
            raise CheckpointError(f"{p} holds neither generator.safetensors nor a checkpoint in checkpoints/")
        return _checkpoint_weights(*found)
    if not p.is_file():
        raise CheckpointError(f"no run directory, generator file or checkpoint at {p}")
    if p.suffix == ".safetensors":
        return _generator_file_weights(p)
    return _checkpoint_weights(p, load_checkpoint(p))


def _generator_file_weights(path: Path) -> RunWeights:
    tensors, meta = read_generator_file(path)

    def strip(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    ema = strip("ema/")
    return RunWeights(path, meta["spec"], strip("generator/"), ema or None, strip("content_net/"))


def _checkpoint_weights(path: Path, state: dict[str, Any]) -> RunWeights:
    models = state["models"]
    gen = {k[len("generator."):]: v for k, v in models.items() if k.startswith("generator.")}
    content = {k[len("content_net."):]: v for k, v in models.items() if k.startswith("content_net.")}
    if "spec" not in state:
        raise CheckpointError(f"{path} has no spec: it was not written by gancr's trainer")
    return RunWeights(path, state["spec"], gen, state.get("ema") or None, content)
