"""What a training checkpoint holds besides the weights: the random states of every generator.

The checkpoint record and its file are :mod:`gancr.storage.records`; a run folder's checkpoints,
:class:`gancr.storage.RunDir`.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


__all__ = ["get_rng_state", "set_rng_state"]


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

