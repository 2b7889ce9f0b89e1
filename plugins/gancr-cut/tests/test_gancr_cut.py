"""gancr-cut: the PatchNCE content loss, through gancr's contract checks and on its own."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
import torch
import torch.nn.functional as F

import gancr
from gancr import build_component
from gancr.testing import check_component, component_params

from gancr_cut import INPUT_LAYER, PatchNCELoss, patch_nce_loss

torch.set_num_threads(1)  # tiny tensors: a second thread only waits for a busy core
#: A small encoder: the tests stay fast on a CPU.
SMALL = {"name": "patchnce", "encoder": {"name": "conv", "widths": [8, 16]}, "num_patches": 64, "head_channels": 32}


@pytest.mark.parametrize("kind,name", component_params(plugin="gancr-cut"))
def test_every_component_keeps_the_gancr_contract(kind, name):
    check_component(kind, name)


def test_patchnce_with_a_small_encoder_keeps_the_contract():
    check_component("content_loss", SMALL)


def test_registered_with_its_plugin_and_distribution():
    entry = gancr.get_registry().get("content_loss", "patchnce")
    assert (entry.plugin, entry.distribution) == ("cut", "gancr-cut")
    assert entry.version == gancr.get_registry().plugins["cut"].version
    assert "ContentLoss_patchnce" in gancr.Spec.model_json_schema()["$defs"]


# ----------------------------------------------------------------------------------------
# the function
# ----------------------------------------------------------------------------------------


def test_patch_nce_loss_values():
    # one patch: no negatives, nothing to tell apart
    v = F.normalize(torch.randn(2, 1, 8), dim=-1)
    assert float(patch_nce_loss(v, v)) == pytest.approx(0.0, abs=1e-6)
    # orthonormal patches: positive similarity 1, negatives 0
    n, tau = 5, 0.5
    eye = torch.eye(n).expand(3, n, n)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + (n - 1)))
    assert float(patch_nce_loss(eye, eye, tau)) == pytest.approx(expected, rel=1e-5)
    # matching is better than a permutation of the keys
    q = F.normalize(torch.randn(2, 16, 8), dim=-1)
    assert patch_nce_loss(q, q) < patch_nce_loss(q, q[:, torch.randperm(16)])
    with pytest.raises(ValueError, match=r"must both be \(B, N, D\)"):
        patch_nce_loss(q, q[:, :3])


def test_patch_nce_loss_treats_keys_as_constants():
    q = F.normalize(torch.randn(2, 6, 4), dim=-1).requires_grad_(True)
    k = F.normalize(torch.randn(2, 6, 4), dim=-1).requires_grad_(True)
    patch_nce_loss(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_patch_nce_loss_gradcheck_in_float64():
    k = F.normalize(torch.randn(2, 4, 3, dtype=torch.float64), dim=-1)
    q = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: patch_nce_loss(F.normalize(q, dim=-1), k, 0.5), (q,))
    assert patch_nce_loss(q.half(), k.half()).dtype == torch.float32


# ----------------------------------------------------------------------------------------
# the loss module
# ----------------------------------------------------------------------------------------


def _smooth(seed: int, size: tuple[int, int] = (32, 40)) -> torch.Tensor:
    """An image with structure at several scales (upsampled noise), in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2, 3, size[0] // 8, size[1] // 8, generator=g)
    fine = torch.rand(2, 3, size[0] // 2, size[1] // 2, generator=g)
    up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
    return (0.7 * up(coarse) + 0.3 * up(fine)).clamp(0, 1)


def test_heads_are_made_at_construction_one_per_layer():
    loss = build_component("content_loss", SMALL)
    assert isinstance(loss, PatchNCELoss)
    assert loss.layers == [INPUT_LAYER, "level0", "level1"]
    assert [h[0].in_features for h in loss.heads] == [3, 8, 16]
    assert all(h[-1].out_features == 32 for h in loss.heads)
    # so they are among the module's parameters before any forward (the trainer's optimiser
    # is made from them), and no forward adds any
    before = [p for p in loss.parameters()]
    assert {id(p) for h in loss.heads for p in h.parameters()} <= {id(p) for p in before}
    x = _smooth(0)
    loss(x, x)
    assert len(list(loss.parameters())) == len(before)
    assert loss.reconstruction is False and loss.zero_at_identity is False


def test_gradients_reach_y_the_heads_and_the_encoder_but_not_x():
    loss = build_component("content_loss", SMALL)
    x = _smooth(1).requires_grad_(True)
    y = _smooth(2).requires_grad_(True)
    loss(x, y).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert x.grad is None  # the keys are constants
    for head in loss.heads:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert all(p.grad is not None for p in loss.encoder.parameters())


def test_a_copy_scores_lower_than_a_shuffled_image():
    loss = build_component("content_loss", SMALL)
    for seed in range(3):
        x = _smooth(seed)
        shuffled = x.flatten(2)[..., torch.randperm(x.shape[-2] * x.shape[-1])].view_as(x)
        torch.manual_seed(seed)
        with torch.no_grad():
            same = float(loss(x, x.clone()))
            torch.manual_seed(seed)
            other = float(loss(x, shuffled))
        assert same < other, (seed, same, other)


def test_layers_patches_and_any_input_size():
    only_input = build_component("content_loss", {**SMALL, "layers": ["input"]})
    assert len(only_input.heads) == 1
    deep = build_component("content_loss", {**SMALL, "layers": ["level1"], "num_patches": 10_000})
    x = torch.rand(1, 3, 21, 30)  # odd sizes are padded to the encoder's reduction
    value = deep(x, torch.rand(1, 3, 21, 30))  # more patches asked than positions: all of them
    assert torch.isfinite(value)
    with pytest.raises(gancr.BuildError, match=r"layers \['relu9'\] are not among the encoder's features; choose from \['input', 'level0', 'level1'\]"):
        build_component("content_loss", {**SMALL, "layers": ["relu9"]})


def test_parameters_are_validated_with_paths():
    spec = {"losses": {"content": [{**SMALL, "layers": ["input", "input"], "temperature": 0, "encoder": {"name": "conv", "widths": "wide"}}]}}
    with pytest.raises(gancr.SpecError) as exc:
        gancr.load_spec(spec)
    errors = dict(exc.value.errors)
    assert "repeated: ['input']" in errors["losses.content.0.layers"]
    assert "greater than 0" in errors["losses.content.0.temperature"]
    assert "losses.content.0.encoder.widths" in errors
    with pytest.raises(gancr.SpecError) as exc:
        gancr.load_spec({"losses": {"content": [{"name": "patchnce", "encoder": {"name": "vgg91"}}]}})
    ((path, message),) = exc.value.errors
    assert path == "losses.content.0.encoder" and "Did you mean 'vgg19', 'vgg16'?" in message


def test_the_docstring_examples_run():
    result = doctest.testmod(importlib.import_module("gancr_cut.patchnce"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 3
