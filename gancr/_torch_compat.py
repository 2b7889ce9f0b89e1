"""Every PyTorch internal that gancr relies on, in one place, each checked by tests/test_torch_compat.py.

These are private names or undocumented protocols of torch, used where the public API has
no equivalent (or only a slower one). When a torch release changes one of them, its test
fails and names it; the rest of gancr imports them from here only.

- ``optimizer.found_inf``: the fused Adam/AdamW kernels skip their update on the device when
  this tensor is non-zero (the protocol ``torch.amp.GradScaler`` uses), so a non-finite
  step is skipped without a host sync.
- ``torch._foreach_*``: one kernel launch per list of tensors (the EMA update).
- ``torch._utils._flatten_dense_tensors``: one flat bucket for a gradient all-reduce.
- ``torch.utils._python_dispatch.TorchDispatchMode``: counts the operators of a step.
- ``torch._dynamo.config.disable``: runs compiled modules eagerly (for FLOP counts).
- ``_BatchNorm`` and ``_InstanceNorm``: the base classes of torch's batch and instance norms.
- ``Tensor._version``: the counter of in-place changes to a tensor (a frozen encoder's
  :class:`~gancr.components.base.FeatureMemo` reuses features only for an unchanged input).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "TorchDispatchMode",
    "BatchNormBase",
    "InstanceNormBase",
    "fused_step_unless",
    "foreach_lerp_",
    "foreach_sub",
    "foreach_mul_",
    "foreach_add_",
    "flatten_dense_tensors",
    "unflatten_dense_tensors",
    "dynamo_disabled",
    "tensor_version",
    "autocast_state",
]

#: Base class of BatchNorm1d/2d/3d and SyncBatchNorm.
BatchNormBase: type[nn.Module] = nn.modules.batchnorm._BatchNorm
#: Base class of InstanceNorm1d/2d/3d.
InstanceNormBase: type[nn.Module] = nn.modules.instancenorm._InstanceNorm


def fused_step_unless(optimizer: torch.optim.Optimizer, bad: Tensor) -> None:
    """``optimizer.step()``, skipped on the device where the 0-dim tensor ``bad`` is true
    (bool, or a float 1.0 / 0.0: then no conversion is launched).

    Only fused optimisers read ``found_inf``; any other would silently step, so they are refused.
    """
    if not optimizer.defaults.get("fused"):
        raise ValueError("fused_step_unless needs a fused optimiser (fused=True)")
    optimizer.found_inf = bad.float()  # type: ignore[attr-defined]  # read by the fused kernels
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]


def foreach_lerp_(targets: Sequence[Tensor], ends: Sequence[Tensor], weight: float) -> None:
    """``t.lerp_(e, weight)`` for every pair, in one launch."""
    torch._foreach_lerp_(list(targets), list(ends), weight)


def foreach_sub(a: Sequence[Tensor], b: Sequence[Tensor]) -> list[Tensor]:
    """``[x - y for x, y in zip(a, b)]`` in one launch."""
    return list(torch._foreach_sub(list(a), list(b)))


def foreach_mul_(tensors: Sequence[Tensor], factor: Tensor | float) -> None:
    """``t.mul_(factor)`` for every tensor, in one launch."""
    torch._foreach_mul_(list(tensors), factor)


def foreach_add_(targets: Sequence[Tensor], others: Sequence[Tensor]) -> None:
    """``t.add_(o)`` for every pair, in one launch."""
    torch._foreach_add_(list(targets), list(others))


def flatten_dense_tensors(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors, flattened and concatenated into one 1-d tensor."""
    from torch._utils import _flatten_dense_tensors

    return _flatten_dense_tensors(list(tensors))


def unflatten_dense_tensors(flat: Tensor, like: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Views of ``flat`` shaped like ``like`` (the inverse of :func:`flatten_dense_tensors`)."""
    from torch._utils import _unflatten_dense_tensors

    return tuple(_unflatten_dense_tensors(flat, list(like)))


@contextlib.contextmanager
def dynamo_disabled() -> Iterator[None]:
    """Within the block, ``torch.compile``d modules run eagerly."""
    import torch._dynamo

    previous = torch._dynamo.config.disable
    torch._dynamo.config.disable = True
    try:
        yield
    finally:
        torch._dynamo.config.disable = previous


def tensor_version(t: Tensor) -> int:
    """How many times ``t`` (or a view of its storage) was changed in place."""
    return int(t._version)


def autocast_state(device_type: str) -> tuple[bool, torch.dtype | None]:
    """Whether autocast is on for ``device_type`` (``"cpu"``, ``"cuda"``), and its dtype."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        enabled = torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
    if not enabled:
        return False, None
    try:
        return True, torch.get_autocast_dtype(device_type)
    except AttributeError:  # torch < 2.4
        return True, torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()
