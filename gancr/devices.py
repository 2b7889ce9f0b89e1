"""Where and how models run: the device, the precision, autocast, and eval mode for a while.

Training, inference, evaluation and the command line share these, so ``auto`` means the
same everywhere: CUDA when present, bf16 autocast on a CUDA device that supports it.

The device rule: every public entry point that runs a model takes ``device="auto"`` by default
(``Trainer`` through ``training.device``, ``stylize``, ``load_generator``, ``load_content_net``,
``evaluate``, ``gancr bench``, and their commands' ``--device``): CUDA when present, else the
CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` choose one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from gancr.errors import GancrError

__all__ = ["resolve_device", "resolve_precision", "autocast", "eval_mode"]


def resolve_device(name: str | torch.device = "auto", what: str = "device") -> torch.device:
    """``auto`` is CUDA when present, else the CPU; otherwise any torch device string (or a
    ``torch.device``). ``what`` names the setting in messages (``training.device``, ``--device``)."""
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise GancrError(f"{what}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GancrError(f"{what} is {str(name)!r} but no CUDA device is available; use auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 on a CUDA device that supports it, else fp32."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if name == "fp16" and device.type != "cuda":
        raise GancrError("training.precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``bf16`` or ``fp16`` on ``device``; nothing for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def eval_mode(*modules: Any) -> Iterator[None]:
    """Within the block: the modules in eval mode, no gradients; afterwards each module's mode is back.

    Arguments that are not ``nn.Module`` (plain callables, None) are left alone.

    Example:
        >>> net = torch.nn.Dropout()
        >>> with eval_mode(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    saved = [(m, m.training) for m in modules if isinstance(m, nn.Module)]
    for m, _ in saved:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in saved:
            m.train(mode)
