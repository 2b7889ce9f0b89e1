"""Every example runs: each YAML spec validates at its real size and trains a few steps shrunk
with ``--set`` overrides; the quickstart through the installed ``gancr`` command; the Python
composition script as a user runs it.

An example without an entry in :data:`trainkit.SHRINK` fails :func:`test_every_example_is_run`, so a
new example cannot go untested.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
import yaml
from PIL import Image

from gancr.cli import main
from gancr.data import resolve_source
from gancr.inference import load_content_net, load_generator

from trainkit import (
    EXAMPLES,
    SHRINK,
    generator_tensors,
    read_metrics,
    run_gancr,
    shrink_overrides,
    subprocess_env,
    write_folder,
    write_image,
)

def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.fixture
def users_files(tmp_path, monkeypatch):
    """Run where a user's files are: painting.yaml trains on `photos/` and `painting.jpg` (relative
    to where gancr runs), which a user has and a clone does not."""
    write_folder(tmp_path / "photos", 3, seed=20)
    write_image(tmp_path / "painting.jpg", 56, 44, seed=30, flat=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_example_is_run():
    yamls = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert yamls == sorted(SHRINK), "add the new example to SHRINK (how to shrink it for a test run)"
    assert (EXAMPLES / "compose_in_python.py").is_file()


@pytest.mark.parametrize("name", sorted(SHRINK))
def test_example_validates_at_full_size(name, capsys, users_files):
    offline = ["--set", "losses.content.0.encoder.pretrained=false"] if name == "perceptual_content.yaml" else []
    assert main(["validate", str(EXAMPLES / name), *offline]) == 0  # nothing downloads in tests
    assert capsys.readouterr().out.startswith(f"{EXAMPLES / name}: valid.")


@pytest.mark.parametrize("name", [n for n in sorted(SHRINK) if n != "quickstart.yaml"])
def test_example_trains_a_few_steps(name, tmp_path, capsys, monkeypatch, builtin_cache_dir, users_files):
    monkeypatch.setenv("GANCR_CACHE_DIR", str(builtin_cache_dir))
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*randomly initialised encoder")
        code = main(["train", str(EXAMPLES / name), "--out", str(out), "-q",
                     *_sets(shrink_overrides(name))])
    printed, err = capsys.readouterr()
    assert code == 0, err
    spec = yaml.safe_load((out / "spec.yaml").read_text())
    steps = sum(stage["steps"] for stage in spec["training"]["stages"])
    assert f"trained {steps} steps" in printed
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    assert all(m["skipped"] == 0.0 for m in metrics)
    generator = load_generator(out)
    x = torch.rand(1, 3, 37, 45)
    assert generator(x).shape == x.shape

    if name == "timm_backbone.yaml":
        assert type(generator.encoder).__name__ == "TimmEncoder"
        assert not generator.encoder.pretrained
    if name == "perceptual_content.yaml":
        assert "loss/content/perceptual" in metrics[-1]
        assert "loss/reconstruction/perceptual" in metrics[-1]  # a pixel-input loss: used for C too
    if name == "shared_encoder.yaml":
        assert "loss/content/content_net" in metrics[-1]
        assert "loss/reconstruction/content_net" not in metrics[-1]
        assert "weight/log_var_c" in metrics[-1]
        tensors = generator_tensors(out / "generator.safetensors")
        shared = [k.split("/", 1)[1] for k in tensors if k.startswith("content_net/encoder.")]
        assert shared and all(torch.equal(tensors[f"content_net/{k}"], tensors[f"generator/{k}"]) for k in shared)
        net = load_content_net(out)
        assert net(x).shape == x.shape
    if name == "cyclegan_like.yaml":
        assert [m["loss/reconstruction"] for m in metrics] == [0.0] * steps  # no content net trained


@pytest.mark.slow
def test_quickstart_runs_and_says_where_to_look(tmp_path, builtin_cache_dir, monkeypatch):
    monkeypatch.setenv("GANCR_CACHE_DIR", str(builtin_cache_dir))
    out = tmp_path / "quick"
    result = run_gancr(
        "train", str(EXAMPLES / "quickstart.yaml"), "--out", str(out), "--max-steps", "3", "-q",
        *_sets(shrink_overrides("quickstart.yaml")),
        env=subprocess_env(GANCR_CACHE_DIR=str(builtin_cache_dir)),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    printed = result.stdout
    assert "trained 3 steps" in printed
    assert f"Look at {out / 'stylized'} and {out / 'samples'}" in printed
    assert f"gancr stylize --checkpoint {out}" in printed
    assert (out / "samples" / "step_0000003.png").is_file()
    assert (out / "checkpoints" / "step_0000003.pt").is_file()
    assert (out / "generator.safetensors").is_file() and (out / "spec.yaml").is_file()
    # the stylised held-out photographs, at their own sizes, each printed
    photos = resolve_source("builtin:holdout")
    for photo in photos:
        stylised = out / "stylized" / photo.name
        assert f"stylised image: {stylised}" in printed
        with Image.open(stylised) as a, Image.open(photo) as b:
            assert a.size == b.size
    assert f"sample grids (input | content-net reconstruction | stylised): {out / 'samples' / 'step_0000003.png'}" in printed


@pytest.mark.slow
def test_compose_in_python_runs_as_a_script(tmp_path, builtin_cache_dir):
    out = tmp_path / "composed"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "compose_in_python.py"), "--steps", "3", "--out", str(out),
         "--image-size", "32", "--batch-size", "2", "--quiet"],
        env=subprocess_env(GANCR_CACHE_DIR=str(builtin_cache_dir)), cwd=tmp_path,
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "gated_res" in result.stdout and "luma" in result.stdout
    assert "trained 3 steps (finished)" in result.stdout
    assert (out / "compose_example.png").is_file() and (out / "generator.safetensors").is_file()
    spec = yaml.safe_load((out / "spec.yaml").read_text())
    assert spec["model"]["generator"]["neck"]["name"] == "gated_res"
    assert [item["name"] for item in spec["losses"]["content"]] == ["l1", "luma"]
    assert "weight/lambda" in read_metrics(out)[-1]  # the constraint balancer at work


def test_the_timm_example_local_weights_recipe_works(tmp_path):
    """timm_backbone.yaml says: offline, point `weights:` at the model's file. Check that."""
    import timm
    from safetensors.torch import save_file

    from gancr import build_component

    text = (EXAMPLES / "timm_backbone.yaml").read_text()
    assert "encoder: {name: timm, model_name: resnet18, pretrained: false}" in text
    assert "weights: /path/to/model.safetensors" in text
    reference = timm.create_model("resnet18")
    for path in (tmp_path / "model.safetensors", tmp_path / "resnet18.pth"):
        state = {k: v.contiguous() for k, v in reference.state_dict().items()}
        save_file(state, str(path)) if path.suffix == ".safetensors" else torch.save(state, path)
        encoder = build_component("encoder", {"name": "timm", "model_name": "resnet18", "weights": str(path)})
        assert encoder.pretrained
        assert torch.equal(encoder.model.conv1.weight, reference.conv1.weight)
