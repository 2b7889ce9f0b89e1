"""The PyTorch internals in gancr._torch_compat still behave as gancr relies on.

A failure here means a torch release changed one of them: the test names which, and
gancr/_torch_compat.py is the one place to adapt.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gancr import _torch_compat as compat


def _adam(fused: bool = True) -> tuple[nn.Parameter, torch.optim.Optimizer]:
    p = nn.Parameter(torch.ones(4))
    p.grad = torch.full((4,), 0.5)
    return p, torch.optim.Adam([p], lr=0.1, fused=fused)


def test_fused_adam_skips_its_update_when_found_inf_is_set():
    p, opt = _adam()
    compat.fused_step_unless(opt, torch.tensor(True))
    assert torch.equal(p.detach(), torch.ones(4)), "fused Adam no longer reads optimizer.found_inf"
    assert not hasattr(opt, "found_inf")
    compat.fused_step_unless(opt, torch.tensor(False))
    assert (p.detach() < 1).all(), "fused Adam did not step with found_inf = 0"


def test_fused_step_unless_refuses_an_optimiser_that_ignores_found_inf():
    _, opt = _adam(fused=False)
    with pytest.raises(ValueError, match="fused"):
        compat.fused_step_unless(opt, torch.tensor(True))


def test_foreach_ops_equal_their_loops():
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(3, generator=g), torch.randn(2, 2, generator=g)]
    b = [torch.randn(3, generator=g), torch.randn(2, 2, generator=g)]
    lerped = [x.clone() for x in a]
    compat.foreach_lerp_(lerped, b, 0.25)
    assert all(torch.allclose(x, y.lerp(z, 0.25)) for x, y, z in zip(lerped, a, b))
    diff = compat.foreach_sub(a, b)
    assert all(torch.equal(d, x - y) for d, x, y in zip(diff, a, b))
    scaled = [x.clone() for x in a]
    compat.foreach_mul_(scaled, torch.tensor(3.0))
    assert all(torch.allclose(s, 3 * x) for s, x in zip(scaled, a))
    summed = [x.clone() for x in a]
    compat.foreach_add_(summed, b)
    assert all(torch.equal(s, x + y) for s, x, y in zip(summed, a, b))


def test_flatten_and_unflatten_dense_tensors_round_trip():
    tensors = [torch.arange(3.0), torch.arange(4.0).view(2, 2)]
    flat = compat.flatten_dense_tensors(tensors)
    assert flat.shape == (7,)
    back = compat.unflatten_dense_tensors(flat, tensors)
    assert all(torch.equal(x, y) for x, y in zip(back, tensors))


def test_a_dispatch_mode_sees_every_operator():
    class Count(compat.TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Count() as counter:
        torch.ones(2) + torch.ones(2)
    assert any("add" in op for op in counter.ops), counter.ops


def test_dynamo_disabled_switches_torch_compile_off_and_back():
    import torch._dynamo

    before = torch._dynamo.config.disable
    with compat.dynamo_disabled():
        assert torch._dynamo.config.disable is True
    assert torch._dynamo.config.disable == before


def test_norm_base_classes_cover_torchs_norms():
    for norm in (nn.BatchNorm1d(2), nn.BatchNorm2d(2), nn.BatchNorm3d(2), nn.SyncBatchNorm(2)):
        assert isinstance(norm, compat.BatchNormBase), type(norm)
    for norm in (nn.InstanceNorm1d(2), nn.InstanceNorm2d(2), nn.InstanceNorm3d(2)):
        assert isinstance(norm, compat.InstanceNormBase), type(norm)
    assert not isinstance(nn.InstanceNorm2d(2), compat.BatchNormBase)


def test_tensor_version_counts_in_place_changes_of_the_storage():
    x = torch.zeros(3)
    before = compat.tensor_version(x)
    x.add_(1)
    assert compat.tensor_version(x) == before + 1
    x[:1].mul_(2)  # through a view
    assert compat.tensor_version(x) == before + 2
    assert compat.tensor_version(x + 1) == 0


def test_autocast_state_says_whether_and_in_which_dtype():
    assert compat.autocast_state("cpu") == (False, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compat.autocast_state("cpu") == (True, torch.bfloat16)
        assert compat.autocast_state("cuda")[0] is False
    assert compat.autocast_state("cpu") == (False, None)
