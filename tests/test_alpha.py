"""Strength control: alpha=1 is plain stylisation, alpha=0 the content net's reconstruction,
values in between lie between the two, and the blending mode follows the architecture."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gancr.errors import GancrError
from gancr.inference import load_content_net, load_generator, stylize, stylize_tensor
from gancr.inference.strength import InputImage, alpha_plan, check_alpha, load_alpha_reference
from inferencekit import TINY_IN_MODEL, run_cli, smooth_image, tiny_spec, write_png, write_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("alpha") / "run")


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return smooth_image(72, 101)


@pytest.fixture(scope="module")
def ends(run: Path, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction C(x), stylisation G(x)), both clamped as stylize clamps."""
    with torch.no_grad():
        return load_content_net(run)(x).clamp(0, 1), load_generator(run)(x).clamp(0, 1)


def test_alpha_one_is_plain_stylize(run, x):
    assert torch.equal(stylize(x, checkpoint=run, alpha=1.0), stylize(x, checkpoint=run))


def test_alpha_zero_is_the_content_nets_reconstruction(run, x, ends):
    assert torch.equal(stylize(x, checkpoint=run, alpha=0.0), ends[0])


def test_intermediate_alphas_lie_between_the_ends(run, x, ends):
    recon, styled = ends
    low, high = torch.minimum(recon, styled) - 1e-6, torch.maximum(recon, styled) + 1e-6
    generator = load_generator(run)
    distances = []
    for alpha in (0.25, 0.5, 0.75):
        y = stylize(x, generator=generator, alpha=alpha)  # the content net comes from generator.weights_path
        assert bool(((y >= low) & (y <= high)).all()), alpha
        distances.append(float((y - styled).abs().mean()))
    assert distances == sorted(distances, reverse=True)  # closer to the full style as alpha grows


def test_feature_mode_when_both_decoders_end_in_the_same_activation(run, x, ends):
    generator, content_net = load_generator(run), load_content_net(run)
    plan = alpha_plan(generator, content_net)
    assert plan.mode == "feature" and "tanh" in plan.reason
    y = stylize_tensor(generator, x, alpha=0.5, content_net=content_net)
    image_mix = 0.5 * ends[0] + 0.5 * ends[1]
    assert float((y - image_mix).abs().max()) > 1e-3  # mixed before the tanh, not after


def test_image_mode_when_the_activations_differ(tmp_path, x):
    spec = tiny_spec(decoder={"name": "upsample_conv", "output": "sigmoid"})
    run = write_run(tmp_path / "sigmoid", spec)
    generator, content_net = load_generator(run), load_content_net(run)
    plan = alpha_plan(generator, content_net)
    assert plan.mode == "image" and "sigmoid" in plan.reason and "tanh" in plan.reason
    with torch.no_grad():
        r, y = content_net(x).clamp(0, 1), generator(x).clamp(0, 1)
    out = stylize_tensor(generator, x, alpha=0.3, content_net=content_net)
    assert float((out - (0.7 * r + 0.3 * y)).abs().max()) < 1e-5


def test_a_run_without_a_trained_content_net_blends_with_the_input(tmp_path, x):
    spec = tiny_spec(train=False)
    run = write_run(tmp_path / "baseline", spec)
    reference = load_alpha_reference(run)
    assert isinstance(reference, InputImage) and "train: false" in reference.note
    with pytest.warns(UserWarning, match="blends with the input image"):
        out = stylize(x, checkpoint=run, alpha=0.0)
    assert torch.equal(out, x.clamp(0, 1))
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(write_png(tmp_path / "p.png", x)),
                           "--out", str(tmp_path / "out"), "--alpha", "0.5")
    assert code == 0 and "image-space blend" in err and "trained no content net" in err


def test_alpha_with_tiles_matches_without(run, x):
    big = smooth_image(150, 190, seed=4)
    generator, content_net = load_generator(run), load_content_net(run)
    whole = stylize_tensor(generator, big, alpha=0.5, content_net=content_net)
    tiled = stylize_tensor(generator, big, alpha=0.5, content_net=content_net, tile=64, overlap=32, stats_tiles=0)
    assert float((tiled - whole).abs().mean()) < 1e-3


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, "strong"])
def test_invalid_alpha_errors_clearly(run, x, bad):
    with pytest.raises(GancrError, match="between 0 and 1"):
        stylize(x, checkpoint=run, alpha=bad)
    assert check_alpha(0) == 0.0 and check_alpha("0.5") == 0.5


def test_alpha_below_one_needs_a_reference(x):
    import gancr

    generator = gancr.build(tiny_spec()).generator.eval()  # not loaded from a file
    with pytest.raises(GancrError, match="content_net"):
        stylize_tensor(generator, x, alpha=0.5)
    with pytest.raises(GancrError, match="content_net"):
        stylize(x, generator=generator, alpha=0.5)
    out = stylize_tensor(generator, x, alpha=0.0, content_net=InputImage())
    assert torch.equal(out, x)


def test_cli_alpha_prints_its_mode_and_rejects_bad_values(run, tmp_path, x):
    photo = write_png(tmp_path / "in" / "photo.png", x)
    code, out, err = run_cli("stylize", "--checkpoint", str(run), str(photo), "--out", str(tmp_path / "o"),
                             "--alpha", "0.4")
    assert code == 0, err
    assert "alpha 0.4: feature-space blend" in err
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(photo), "--out", str(tmp_path / "o"),
                           "--alpha", "2")
    assert code == 2 and "alpha must be between 0 and 1" in err and "got 2.0" in err
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(photo), "--out", str(tmp_path / "o"),
                           "--alpha", "lots")
    assert code == 2 and "invalid float value" in err


def test_cli_alpha_reads_the_run_once_and_checks_alpha_once(run, tmp_path, x, monkeypatch):
    """One weights file read, one spec validation, one generator built and probed, one alpha check."""
    import gancr.inference.load as load
    import gancr.inference.strength as strength

    calls: dict[str, int] = {}

    def counted(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for module, name in ((load, "read_run"), (load, "inference_spec"), (load, "build_generator"),
                         (load, "build_content_net"), (strength, "_validate_alpha")):
        counted(module, name)
    photo = write_png(tmp_path / "in" / "photo.png", x)
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(photo), "--out", str(tmp_path / "o"),
                           "--alpha", "0.5")
    assert code == 0, err
    assert calls == {"read_run": 1, "inference_spec": 1, "build_generator": 1, "build_content_net": 1,
                     "_validate_alpha": 1}


def test_shared_encoder_runs_use_feature_mode(tmp_path, x):
    model = {k: dict(v) for k, v in TINY_IN_MODEL.items()}
    model["content_net"] = {"share_encoder": True}
    run = write_run(tmp_path / "shared", {"model": model, "training": {"image_size": 32}})
    generator, content_net = load_generator(run), load_content_net(run)
    assert alpha_plan(generator, content_net).mode == "feature"
    with torch.no_grad():
        recon = content_net(x).clamp(0, 1)
    assert torch.equal(stylize_tensor(generator, x, alpha=0.0, content_net=content_net), recon)
    assert isinstance(content_net, nn.Module)
