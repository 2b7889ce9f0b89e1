"""What a resume needs besides the weights: the random states of every generator, and a spec
that did not change the model.

The checkpoint record and its file are :mod:`gancr.storage.records`; a run folder's checkpoints,
:class:`gancr.storage.RunDir`.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from gancr.errors import CheckpointError, SpecError
from gancr.spec import Spec
from gancr.storage import RunDir

__all__ = ["get_rng_state", "set_rng_state", "check_resumed_spec"]


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



def check_resumed_spec(saved: dict[str, Any] | None, current: dict[str, Any], path: Path, run: RunDir) -> None:
    """The run's model and losses must not change on resume (a :class:`CheckpointError`);
    training settings may (a warning names them). ``saved`` is the checkpoint's spec."""
    if not saved:
        return
    changed = _differences(_with_defaults(saved), current)
    fixed = [p for p in changed if p.split(".")[0] in ("model", "losses")]
    if fixed:
        raise CheckpointError(
            f"--resume: {path} was trained with a different model or losses ({', '.join(fixed[:5])}"
            f"{' ...' if len(fixed) > 5 else ''}); resume with the run's own spec: "
            f"gancr train {run.spec_file} --out {run.path} --resume"
        )
    other = [p for p in changed if p.split(".")[0] not in ("description",)]
    if other:
        warnings.warn(
            f"resuming {path.name} with changed settings: {', '.join(other[:8])}"
            f"{' ...' if len(other) > 8 else ''}",
            UserWarning,
            stacklevel=4,
        )


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's spec with every setting added since it was written at its default (a
    field a newer gancr added is not a change); as saved where it no longer validates."""
    try:
        return Spec.model_validate(saved).to_dict()
    except (ValidationError, SpecError):
        return saved


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two plain-data trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _differences(x, y, f"{prefix}{i}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
