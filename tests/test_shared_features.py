"""Features computed once: a frozen encoder remembers its last inputs' features (FeatureMemo),
encoders specified alike with ``freeze: true`` are one module across the trio and the losses,
and the Gram loss's targets (the style batch, or the style images whole)."""

from __future__ import annotations

import copy

import pytest
import torch

import gancr
from gancr import build_component
from gancr.builder import build_losses
from gancr.components.base import FeatureMemo, StyleBatch
from gancr.components.encoders import VGGEncoder
from gancr.errors import GancrError


def _counting(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    compute = VGGEncoder.features_of

    def counted(self, x):
        calls.append((id(self), tuple(x.shape), x.requires_grad, torch.is_grad_enabled()))
        return compute(self, x)

    monkeypatch.setattr(VGGEncoder, "features_of", counted)
    return calls


def test_the_memo_reuses_features_only_for_the_same_unchanged_input():
    memo, calls = FeatureMemo(size=2), []

    def features(x):
        calls.append(x)
        return [x * 2, x.sum((2, 3))]

    x = torch.rand(1, 3, 4, 4)
    first = memo(x, features)
    assert memo(x, features) is first and len(calls) == 1
    assert memo(x.clone(), features) is not first and len(calls) == 2  # another tensor, same values
    x.add_(1)  # changed in place: computed again
    assert torch.equal(memo(x, features)[0], x * 2) and len(calls) == 3
    first = memo(x, features)
    first[0].mul_(0)  # a caller changed a result in place: not handed out again
    assert torch.equal(memo(x, features)[0], x * 2) and len(calls) == 4
    with torch.autocast("cpu", dtype=torch.bfloat16):  # another autocast: computed again
        memo(x, features)
    assert len(calls) == 5
    # features without a graph are not reused where one is needed; with one, they are detached under no_grad
    y = torch.rand(1, 3, 4, 4, requires_grad=True)
    with torch.no_grad():
        assert not memo(y, features)[0].requires_grad
    assert memo(y, features)[0].requires_grad and len(calls) == 7
    with torch.no_grad():
        assert not memo(y, features)[0].requires_grad and len(calls) == 7
    # a copy (an EMA's deep copy of a module) starts empty and does not share
    clone = copy.deepcopy(memo)
    clone(y, features)
    assert len(calls) == 8


def test_a_frozen_vgg_encoder_remembers_and_an_unfrozen_one_does_not(monkeypatch):
    calls = _counting(monkeypatch)
    x = torch.rand(1, 3, 16, 16)
    frozen = build_component("encoder", {"name": "vgg16", "layer": "relu2_1", "freeze": True})
    assert frozen(x) is frozen(x) and len(calls) == 1
    trainable = build_component("encoder", {"name": "vgg16", "layer": "relu2_1"})
    trainable(x), trainable(x)
    assert len(calls) == 3


SPEC = {
    "model": {
        "generator": {"encoder": {"name": "vgg16", "layer": "relu2_1", "freeze": True},
                      "neck": {"name": "resblocks", "blocks": 1, "width": 8},
                      "decoder": {"name": "unet", "widths": [8], "skip_norm": True}},
        "content_net": {"share_encoder": True, "decoder": {"name": "unet", "widths": [4], "skip_norm": True}},
        "discriminator": {"name": "patchgan", "layers": 1, "width": 4},
    },
    "losses": {
        "content": [{"name": "content_net", "distance": "mse", "normalize": True},
                    {"name": "perceptual", "encoder": {"name": "vgg16", "layer": "relu2_1", "freeze": True}}],
        "style": [{"name": "gram", "encoder": {"name": "vgg16", "layer": "relu2_1", "freeze": True},
                   "normalize": True, "per_image": True},
                  {"name": "lsgan", "weight": 0.1}],
    },
    "training": {"stages": [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 2}],
                 "batch_size": 2, "image_size": 32},
}


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder")
def test_frozen_encoders_specified_alike_are_one_module_in_the_trio_and_the_losses():
    spec = gancr.load_spec(SPEC)
    trio = gancr.build(spec)
    losses = build_losses(spec, trio)
    encoder = trio.generator.encoder
    assert trio.content_net.encoder is encoder
    assert losses.content[1].loss.encoder is encoder and losses.style[0].loss.encoder is encoder
    alone = build_losses(spec)  # without the trio: the losses share one of their own
    assert alone.content[1].loss.encoder is alone.style[0].loss.encoder is not encoder
    unfrozen = gancr.load_spec({**SPEC, "losses": {**SPEC["losses"], "style": [
        {"name": "gram", "encoder": {"name": "vgg16", "layer": "relu2_1"}}]}})
    assert build_losses(unfrozen, trio).style[0].loss.encoder is not encoder  # freeze: false is its own


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder")
def test_a_training_step_computes_each_images_features_once(monkeypatch, tmp_path, builtin_cache_dir):
    calls = _counting(monkeypatch)
    trainer = gancr.Trainer({**SPEC, "data": {"content": "builtin:photos", "style": "builtin:cartoon"}},
                            tmp_path / "run", quiet=True, max_steps=2)
    trainer.fit()
    per_step = [c for c in calls if c[1] == (2, 3, 32, 32)]
    # each step, one pass per image: E(x) for G, C and the content losses; E(s) for the Gram target;
    # E(G(x)) with a graph for the Gram loss, the content net's loss and the perceptual loss; and
    # E(C(x)) with a graph for the perceptual loss of the content net's reconstruction
    assert len(per_step) == 2 * 4, per_step
    assert sum(1 for c in per_step if c[2]) == 2 * 2


def _batch(real, fake):
    return StyleBatch(real, fake, discriminator=None)


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder")
def test_gram_targets_from_the_batch_or_the_style_images_whole():
    torch.manual_seed(0)
    enc = {"name": "vgg16", "layer": "relu2_1", "freeze": True}
    real = torch.rand(2, 3, 32, 32)
    fake = real.clone()
    batch = build_component("style_loss", {"name": "gram", "encoder": enc, "normalize": True})
    assert float(batch.generator_loss(_batch(real, fake))) == pytest.approx(0.0, abs=1e-6)
    per_image = build_component("style_loss", {"name": "gram", "encoder": enc, "normalize": True, "per_image": True})
    assert float(per_image.generator_loss(_batch(real, fake))) > 0  # each image differs from the batch mean
    whole = build_component("style_loss", {"name": "gram", "encoder": enc, "target": "images"})
    assert whole.needs_style_images
    with pytest.raises(GancrError, match="no target yet: call use_style_images"):
        whole.generator_loss(_batch(real, fake))
    painting = torch.rand(3, 48, 40)
    whole.use_style_images([painting])
    assert float(whole.generator_loss(_batch(real, painting[None]))) == pytest.approx(0.0, abs=1e-6)
    assert float(whole.generator_loss(_batch(real, fake))) > 0
    assert "target_0" in whole.state_dict() and bool(whole.state_dict()["target_set"])  # checkpoints keep it
    # normalised: scaling the features' statistics does not change the loss's scale-free value
    scaled = build_component("style_loss", {"name": "gram", "encoder": enc, "normalize": True, "target": "images"})
    scaled.use_style_images([painting])
    assert float(scaled.generator_loss(_batch(real, painting[None]))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder")
def test_the_trainer_gives_the_style_images_to_a_gram_loss_that_wants_them(tmp_path, builtin_cache_dir):
    spec = {**SPEC, "data": {"content": "builtin:photos", "style": "builtin:cartoon", "load_size": 40}}
    spec["losses"] = {**SPEC["losses"], "style": [{**SPEC["losses"]["style"][0], "target": "images"}]}
    trainer = gancr.Trainer(spec, tmp_path / "run", quiet=True, max_steps=1)
    trainer.fit()
    gram = trainer.losses.style[0].loss
    assert bool(gram.target_set)
    images = trainer.dataset.style_images()
    assert len(images) == 7 and min(images[0].shape[-2:]) == 40
    expected = copy.deepcopy(gram)
    expected.use_style_images(images)
    assert torch.allclose(gram.target_0, expected.target_0)


def test_chroma_noise_penalises_only_colour_beyond_the_styles():
    from gancr.metrics import chroma_energy

    loss = build_component("style_loss", {"name": "chroma_noise"})
    g = torch.Generator().manual_seed(0)
    smooth = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32).clone()
    smooth[:, 0] = smooth[:, 0].flip(-1)  # a colour gradient: little high-frequency colour
    speckled = (smooth + 0.3 * torch.rand(2, 3, 32, 32, generator=g)).clamp(0, 1).requires_grad_(True)
    assert chroma_energy(speckled.detach()) > 10 * chroma_energy(smooth)
    assert float(loss.generator_loss(StyleBatch(speckled.detach(), smooth, None))) == 0.0  # smoother than the style
    value = loss.generator_loss(StyleBatch(smooth, speckled, None))
    value.backward()
    assert float(value) > 1 and speckled.grad.abs().sum() > 0
    assert loss.discriminator_loss(StyleBatch(smooth, speckled, None)) is None and not loss.adversarial


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder")
def test_an_unsquared_normalised_gram_loss_is_the_remaining_style_distance():
    from gancr.metrics.style import gram_matrix, relative_gram_distance

    torch.manual_seed(0)
    enc = {"name": "vgg16", "layer": "relu2_1", "freeze": True}
    spec = {"name": "gram", "encoder": enc, "normalize": True, "per_image": True, "target": "images"}
    painting, fakes = torch.rand(3, 40, 48), torch.rand(3, 3, 32, 32)
    plain = build_component("style_loss", {**spec, "squared": False})
    squared = build_component("style_loss", spec)
    for loss in (plain, squared):
        loss.use_style_images([painting])
    with torch.no_grad():
        targets = [gram_matrix(f.double())[0] for f in plain.encoder(painting[None])]
        expected = relative_gram_distance(plain.encoder(fakes), targets).mean()
    assert float(plain.generator_loss(_batch(fakes, fakes))) == pytest.approx(float(expected), rel=1e-4)
    with torch.no_grad():
        # (an encoder of its own: random weights, drawn anew)
        targets = [gram_matrix(f.double())[0] for f in squared.encoder(painting[None])]
        squares = [((gram_matrix(f.double()) - t).square().sum((1, 2)) / t.square().sum()).mean()
                   for f, t in zip(squared.encoder(fakes), targets)]
    assert float(squared.generator_loss(_batch(fakes, fakes))) == pytest.approx(float(sum(squares) / len(squares)), rel=1e-4)
    at_target = painting[None].clone().requires_grad_(True)
    value = plain.generator_loss(_batch(fakes, at_target))
    value.backward()
    assert float(value) == pytest.approx(0.0, abs=1e-4) and torch.isfinite(at_target.grad).all()


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder")
def test_a_gray_gram_loss_compares_the_luminance_alone():
    from gancr.metrics.content import gray

    torch.manual_seed(0)
    enc = {"name": "vgg16", "layer": "relu2_1", "freeze": True}
    loss = build_component("style_loss", {"name": "gram", "encoder": enc, "normalize": True, "per_image": True,
                                          "target": "images", "gray": True})
    painting, fakes = torch.rand(3, 40, 48), torch.rand(2, 3, 32, 32)
    loss.use_style_images([painting])
    value = float(loss.generator_loss(_batch(fakes, fakes)))
    # the same loss, colour on, fed the gray images (same encoder): the same value
    loss.gray = False
    loss.use_style_images([gray(painting[None])[0].expand(3, -1, -1)])
    assert float(loss.generator_loss(_batch(fakes, gray(fakes).expand(-1, 3, -1, -1)))) == pytest.approx(value, rel=1e-5)
    assert float(loss.generator_loss(_batch(fakes, fakes))) != pytest.approx(value, rel=1e-3)  # colour counts there
    # a painting's gray copy is the painting, for a gray loss: no distance left
    loss.gray = True
    loss.use_style_images([painting])
    assert float(loss.generator_loss(_batch(fakes, gray(painting[None]).expand(-1, 3, -1, -1)))) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder")
def test_a_gram_loss_with_a_margin_sees_reflected_edges_not_the_encoders_zero_padding():
    import torch.nn.functional as F

    from gancr.metrics.style import gram_matrix

    torch.manual_seed(0)
    enc = {"name": "vgg16", "layer": "relu3_1", "freeze": True}
    spec = {"name": "gram", "encoder": enc, "normalize": True, "per_image": True, "target": "images"}
    loss = build_component("style_loss", {**spec, "margin": 8})
    # relu1_1, relu2_1, relu3_1 at reductions 1, 2, 4: 8 // r padded positions off each side
    assert loss.trims == [8, 4, 2]
    painting, fakes = torch.rand(3, 40, 48), torch.rand(2, 3, 32, 32)
    loss.use_style_images([painting])

    def grams(images):  # by hand: reflect-pad, encode, drop the padded positions
        feats = loss.encoder(F.pad(images, (8,) * 4, mode="reflect"))
        return [gram_matrix(f[..., t:-t, t:-t]) for f, t in zip(feats, (8, 4, 2))]

    with torch.no_grad():
        targets = [g[0] for g in grams(painting[None])]
        assert all(torch.allclose(getattr(loss, f"target_{k}"), t, rtol=1e-5) for k, t in enumerate(targets))
        terms = [((g - t).square().sum((1, 2)) / t.square().sum()).mean() for g, t in zip(grams(fakes), targets)]
    assert float(loss.generator_loss(_batch(fakes, fakes))) == pytest.approx(float(sum(terms) / 3), rel=1e-4)

    # a flat colour has no edges: with a margin (deep enough for relu1_1 and relu2_1's receptive
    # fields) its Gram matrices are the same at any size; without, its borders against the
    # encoder's zero padding are edges, a share of the image that changes with its size
    shallow = {**enc, "layer": "relu2_1"}
    for margin, same in ((8, True), (0, False)):
        flat = build_component("style_loss", {**spec, "encoder": shallow, "margin": margin})
        small, large = ([g[0] for g in flat._grams(torch.full((1, 3, n, n), 0.7))] for n in (24, 48))
        assert all(torch.allclose(a, b, rtol=1e-4) for a, b in zip(small, large)) is same
    # a margin as large as the image cannot be reflected: said plainly, not torch's padding error
    with pytest.raises(gancr.GancrError, match="margin 8 reflects more than the image has.*8x8 px"):
        loss.generator_loss(_batch(fakes, torch.rand(2, 3, 8, 8)))
