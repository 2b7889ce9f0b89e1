"""Checkpoints and run files: atomic writes, safe loads, random states, rotation.

A checkpoint is data, not code: tensors, numbers, strings and containers of them, written
with ``torch.save`` and read back with ``torch.load(weights_only=True)``, so a file that
holds arbitrary Python objects is refused instead of executed. Every file is written to a
temporary name in the same folder and renamed into place, so a run killed at any moment
leaves the last complete checkpoint loadable.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gancr.errors import CheckpointError

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
    "get_rng_state",
    "set_rng_state",
    "save_generator",
    "read_generator_file",
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
# random states
# ----------------------------------------------------------------------------------------


def get_rng_state() -> dict[str, Any]:
    """Python's, numpy's, torch's CPU and CUDA random states, as plain data and tensors."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_data(random.getstate()),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`get_rng_state`'s states (their tensors may have been loaded onto a GPU:
    random states are CPU byte tensors)."""
    random.setstate(_to_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in states])


def _to_data(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_data(v) for v in value]
    return value


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


# ----------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:07d}.pt"


def save_checkpoint(directory: str | os.PathLike[str], step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``<directory>/step_<step>.pt``, atomically."""
    state = {"version": CHECKPOINT_VERSION, "step": step, **state}
    return atomic_write(checkpoint_path(Path(directory), step), lambda p: torch.save(state, p))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``).

    Raises:
        CheckpointError: missing, truncated or corrupt, or holding arbitrary objects.
    """
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
    import warnings

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


def save_generator(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], spec: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> Path:
    """Write the inference weights (``generator/``, ``ema/``, ``content_net/`` prefixes) with the spec."""
    from safetensors.torch import save_file

    metadata = {"format": "gancr.generator", "version": str(CHECKPOINT_VERSION), "spec": json.dumps(spec)}
    for key, value in (extra or {}).items():
        metadata[key] = json.dumps(value)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def read_generator_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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
