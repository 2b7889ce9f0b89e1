"""gancr-diffaug: DiffAugment in front of any discriminator, through gancr's contract checks and on its own."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

import gancr
from gancr import build_component
from gancr.components.base import StyleBatch
from gancr.testing import check_component, component_params

from gancr_diffaug import DiffAugDiscriminator, diff_augment, rand_cutout, rand_translation

torch.set_num_threads(1)  # tiny tensors: a second thread only waits for a busy core

SMALL_INNER = {"name": "patchgan", "layers": 2, "width": 8}


@pytest.mark.parametrize("kind,name", component_params(plugin="gancr-diffaug"))
def test_every_component_keeps_the_gancr_contract(kind, name):
    check_component(kind, name)


@pytest.mark.parametrize("inner", ["patchgan", "multiscale", "dcgan"])
def test_it_wraps_any_registered_discriminator(inner):
    check_component("discriminator", {"name": "diffaug", "inner": {"name": inner, "width": 4}})


def test_registered_with_its_plugin_and_distribution():
    entry = gancr.get_registry().get("discriminator", "diffaug")
    assert (entry.plugin, entry.distribution) == ("diffaug", "gancr-diffaug")
    schema = gancr.Spec.model_json_schema()["$defs"]["Discriminator_diffaug"]
    assert schema["properties"]["policy"]["items"]["enum"] == ["color", "translation", "cutout"]
    inner = {ref["$ref"].rpartition("/")[2] for ref in schema["properties"]["inner"]["oneOf"]}
    assert {f"Discriminator_{name}" for name in gancr.list_components("discriminator")} == inner


# ----------------------------------------------------------------------------------------
# the augmentations
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [["color"], ["translation"], ["cutout"], ["color", "translation", "cutout"]])
def test_differentiable_gradcheck_in_float64(policy):
    x = torch.rand(2, 3, 8, 10, dtype=torch.float64, requires_grad=True)

    def augment(x):  # the same random draws on every call
        return diff_augment(x, policy, generator=torch.Generator().manual_seed(3))

    assert not torch.equal(augment(x), x)
    assert torch.autograd.gradcheck(augment, (x,))


def test_translation_shifts_whole_pixels_with_a_grey_border():
    x = torch.rand(4, 3, 16, 16)
    y = (rand_translation(x * 2 - 1, 0.25, torch.Generator().manual_seed(0)) + 1) / 2
    for i in range(4):
        matches = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.allclose(
                y[i, :, max(0, -dy):16 - max(0, dy), max(0, -dx):16 - max(0, dx)],
                x[i, :, max(0, dy):16 + min(0, dy), max(0, dx):16 + min(0, dx)],
            )
        ]
        assert len(matches) == 1
        dy, dx = matches[0]
        if dy > 0:  # what came in from outside is mid-grey
            assert torch.allclose(y[i, :, 16 - dy:], torch.full_like(y[i, :, 16 - dy:], 0.5))


def test_cutout_greys_one_rectangle_of_the_given_size():
    x = torch.full((3, 3, 20, 20), 0.9) * 2 - 1
    y = (rand_cutout(x, 0.5, torch.Generator().manual_seed(1)) + 1) / 2
    for i in range(3):
        hole = (y[i, 0] - 0.5).abs() < 1e-6
        rows, cols = hole.any(1).sum().item(), hole.any(0).sum().item()
        assert hole.sum() == rows * cols and 0 < rows <= 10 and 0 < cols <= 10  # clipped at borders
        assert torch.allclose(y[i][:, ~hole], torch.tensor(0.9))


def test_color_changes_each_image_differently_and_keeps_its_layout():
    x = torch.rand(1, 3, 8, 8).expand(4, -1, -1, -1)
    y = diff_augment(x, ["color"], generator=torch.Generator().manual_seed(0))
    assert len({round(float(m), 4) for m in y.mean(dim=(1, 2, 3))}) == 4  # one draw per image
    # brightness, saturation, contrast are affine per image: the layout survives
    for i in range(4):
        assert torch.corrcoef(torch.stack([x[i].mean(0).flatten(), y[i].mean(0).flatten()]))[0, 1] > 0.99


def test_an_empty_policy_and_unknown_policies():
    x = torch.rand(1, 3, 8, 8)
    assert diff_augment(x, []) is x
    with pytest.raises(ValueError, match=r"unknown DiffAugment policies \['flip'\]"):
        diff_augment(x, ["flip"])


# ----------------------------------------------------------------------------------------
# the discriminator
# ----------------------------------------------------------------------------------------


class Spy(nn.Module):
    """Records what it is called with; a logit per image."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.scale * x.mean(dim=(1, 2, 3)).unsqueeze(1)


class SpyPlugin:
    @gancr.hookimpl
    def gancr_register_components(self, registry):
        registry.register("discriminator", "test_spy", Spy)


def test_reals_and_fakes_are_both_augmented_in_training_only():
    with gancr.registered_plugin(SpyPlugin(), "spy"):
        d = build_component("discriminator", {"name": "diffaug", "inner": {"name": "test_spy"}})
    spy = d.inner
    real, fake = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16, requires_grad=True)
    batch = StyleBatch(real, fake, d)
    batch.d_real(), batch.d_fake()[0].sum().backward()
    seen_real, seen_fake = spy.seen
    assert not torch.allclose(seen_real, real) and not torch.allclose(seen_fake, fake.detach())
    assert fake.grad is not None and fake.grad.abs().sum() > 0  # through the augmentation
    # each call draws its own augmentation: the same images twice are augmented differently
    d(real)
    assert not torch.allclose(spy.seen[-1], seen_real)
    # eval: straight through (as the builder's probe and any evaluation see it)
    d.eval()
    d(real)
    assert torch.equal(spy.seen[-1], real)


def test_nested_specs_validate_all_the_way_down_with_paths():
    def errors(discriminator):
        with pytest.raises(gancr.SpecError) as exc:
            gancr.load_spec({"model": {"discriminator": discriminator}})
        return dict(exc.value.errors)

    bad = errors({"name": "diffaug", "policy": ["color", "flip"], "inner": {"name": "patchgan", "layers": "three", "widht": 8}})
    assert "'color', 'translation' or 'cutout'" in bad["model.discriminator.policy.1"]
    assert "valid integer" in bad["model.discriminator.inner.layers"]
    assert "did you mean 'width'?" in bad["model.discriminator.inner.widht"]
    unknown = errors({"name": "diffaug", "inner": {"name": "patchgn"}})
    assert "unknown discriminator 'patchgn'. Did you mean 'patchgan'?" in unknown["model.discriminator.inner"]
    deep = errors({"name": "diffaug", "inner": {"name": "diffaug", "inner": {"name": "dcgan", "layers": 0}}})
    assert "greater than or equal to 1" in deep["model.discriminator.inner.inner.layers"]
    assert "repeated: ['color']" in errors({"name": "diffaug", "policy": ["color", "color"]})["model.discriminator.policy"]
    # a valid one keeps its nested parameters
    spec = gancr.load_spec({"model": {"discriminator": {"name": "diffaug", "policy": ["translation"], "inner": SMALL_INNER}}})
    d = spec.model.discriminator
    assert (d.name, d.policy, d.inner.name, d.inner.layers, d.inner.width) == ("diffaug", ["translation"], "patchgan", 2, 8)


def test_built_into_a_trio_around_its_inner_discriminator():
    trio = gancr.build({
        "model": {
            "generator": {"encoder": {"name": "conv", "widths": [4, 8]}, "neck": {"name": "identity"}},
            "content_net": {"share_encoder": True},
            "discriminator": {"name": "diffaug", "inner": SMALL_INNER},
        },
        "training": {"image_size": 32},
    })
    assert isinstance(trio.discriminator, DiffAugDiscriminator)
    assert type(trio.discriminator.inner).__name__ == "PatchGAN"
    assert trio.discriminator.policy == ["color", "translation", "cutout"]


def test_the_docstring_examples_run():
    result = doctest.testmod(importlib.import_module("gancr_diffaug.diffaug"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 3
