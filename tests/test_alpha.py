"""Strength control: alpha=1 is plain stylisation, alpha=0 gives back the input photograph for
every run (whatever its content net), and values in between are ``x + alpha (G(x) - x)``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancr.errors import GancrError
from gancr.inference import StylizeOptions, load_generator, stylize, stylize_tensor
from gancr.inference.strength import StrengthBlend, check_alpha
from inferencekit import TINY_IN_MODEL, run_cli, smooth_image, tiny_spec, write_png, write_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("alpha") / "run")


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return smooth_image(72, 101)


def _runs(tmp_path: Path) -> dict[str, Path]:
    """One run per kind of content net: its own, shared encoder, none trained, residual generator."""
    shared = {k: dict(v) for k, v in TINY_IN_MODEL.items()}
    shared["content_net"] = {"share_encoder": True}
    residual = {k: dict(v) for k, v in TINY_IN_MODEL.items()}
    residual["generator"] = {**residual["generator"], "residual": True}
    return {
        "own": write_run(tmp_path / "own"),
        "shared": write_run(tmp_path / "shared", {"model": shared, "training": {"image_size": 32}}),
        "untrained": write_run(tmp_path / "untrained", tiny_spec(train=False)),
        "residual": write_run(tmp_path / "residual", {"model": residual, "training": {"image_size": 32}}),
    }


def test_alpha_one_is_plain_stylize(run, x):
    generator = load_generator(run)
    assert torch.equal(stylize_tensor(generator, x, alpha=1.0), stylize_tensor(generator, x))


def test_alpha_zero_gives_back_the_input_for_every_kind_of_run(tmp_path, x):
    for name, path in _runs(tmp_path).items():
        assert torch.equal(stylize_tensor(load_generator(path), x, alpha=0.0), x), name


def test_intermediate_alphas_blend_input_and_stylisation(run, x):
    generator = load_generator(run)
    with torch.no_grad():
        styled = generator(x).clamp(0, 1)
    distances = []
    for alpha in (0.25, 0.5, 0.75):
        y = stylize_tensor(generator, x, StylizeOptions(alpha=alpha))
        assert float((y - (x + alpha * (styled - x))).abs().max()) < 1e-5, alpha
        distances.append(float((y - styled).abs().mean()))
    assert distances == sorted(distances, reverse=True)  # closer to the full style as alpha grows


def test_alpha_scales_a_residual_generators_change(tmp_path, x):
    path = _runs(tmp_path)["residual"]
    generator = load_generator(path)
    with torch.no_grad():
        change = generator(x) - x
    half = stylize_tensor(generator, x, alpha=0.5)
    assert float((half - (x + 0.5 * change)).abs().max()) < 1e-5


def test_alpha_with_tiles_matches_without(run, x):
    big = smooth_image(150, 190, seed=4)
    generator = load_generator(run)
    whole = stylize_tensor(generator, big, alpha=0.5)
    tiled = stylize_tensor(generator, big, alpha=0.5, tile=64, overlap=32, stats_tiles=0)
    assert float((tiled - whole).abs().mean()) < 1e-3


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, "strong"])
def test_invalid_alpha_errors_clearly(run, x, bad):
    with pytest.raises(GancrError, match="between 0 and 1"):
        stylize_tensor(load_generator(run), x, alpha=bad)
    with pytest.raises(GancrError, match="between 0 and 1"):
        stylize([str(run)], out_dir=run / "never", checkpoint=run, alpha=bad)  # before anything is read
    assert check_alpha(0) == 0.0 and check_alpha("0.5") == 0.5


def test_a_generator_not_loaded_from_a_file_takes_alpha_too(x):
    import gancr

    generator = gancr.build(tiny_spec()).generator.eval()
    assert torch.equal(stylize_tensor(generator, x, alpha=0.0), x)
    assert torch.equal(stylize_tensor(generator, x, StylizeOptions(alpha=0.0)), x)
    assert StrengthBlend(generator, 0.3).reduction == generator.reduction


@pytest.mark.parametrize("name", ["alpha_plan", "InputImage", "load_alpha_reference"])
def test_removed_names_say_what_replaced_them(name):
    import gancr.inference.strength as strength

    with pytest.raises(AttributeError, match="removed in gancr 0.2.*blends the input"):
        getattr(strength, name)


def test_cli_alpha_zero_writes_the_input_back(tmp_path, x):
    for name, path in _runs(tmp_path).items():
        photo = write_png(tmp_path / "in" / "photo.png", x)
        code, _, err = run_cli("stylize", "--checkpoint", str(path), str(photo), "--out", str(tmp_path / name),
                               "--alpha", "0")
        assert code == 0, err
        written = np.asarray(Image.open(tmp_path / name / "photo.png"))
        assert np.array_equal(written, np.asarray(Image.open(photo))), name


def test_cli_alpha_rejects_bad_values(run, tmp_path, x):
    photo = write_png(tmp_path / "in" / "photo.png", x)
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(photo), "--out", str(tmp_path / "o"),
                           "--alpha", "0.4")
    assert code == 0, err
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(photo), "--out", str(tmp_path / "o"),
                           "--alpha", "2")
    assert code == 2 and "alpha must be between 0 and 1" in err and "got 2.0" in err
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(photo), "--out", str(tmp_path / "o"),
                           "--alpha", "lots")
    assert code == 2 and "invalid float value" in err


def test_cli_alpha_reads_the_run_once_and_checks_alpha_once(run, tmp_path, x, monkeypatch):
    """One weights file read, one spec validation, one generator built, no content net, one alpha check."""
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
    assert calls == {"read_run": 1, "inference_spec": 1, "build_generator": 1, "_validate_alpha": 1}
