"""The plugin packages in ``plugins/`` (gancr-cut, gancr-diffaug), installed as the README says:
listed with their plugin and distribution, in the schema, trained together end to end; and a
spec's ``requires:`` naming what is missing or too old, and how to install it.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
import torch
import yaml

from gancr.cli import main
from gancr.training import Trainer

from trainkit import changed, image_dirs, params, read_metrics, tiny_spec  # noqa: F401 - fixture

REQUIRES = ["gancr-cut>=0.1", "gancr-diffaug>=0.1"]
PATCHNCE = {
    "name": "patchnce", "weight": 1.0, "encoder": {"name": "conv", "widths": [8, 16]},
    "layers": ["input", "level1"], "num_patches": 32, "head_channels": 16,
}
DIFFAUG = {
    "name": "diffaug", "policy": ["color", "translation", "cutout"],
    "inner": {"name": "patchgan", "layers": 2, "width": 8},
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _spec(content: Path, style: Path) -> dict:
    spec = tiny_spec(content, style, requires=REQUIRES)
    spec["model"]["discriminator"] = DIFFAUG
    spec["losses"]["content"] = [PATCHNCE, {"name": "l1", "weight": 0.5}]
    spec["training"]["stages"] = [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 2}]
    return spec


def test_the_plugins_are_listed_described_and_in_the_schema(capsys):
    versions = {d: importlib.metadata.version(d) for d in ("gancr-cut", "gancr-diffaug")}
    code, out, _ = run(capsys, "components")
    assert code == 0
    rows = {tuple(line.split()[:2]): line for line in out.splitlines()[1:]}
    assert f"cut (gancr-cut {versions['gancr-cut']})" in rows[("content_loss", "patchnce")]
    assert f"diffaug (gancr-diffaug {versions['gancr-diffaug']})" in rows[("discriminator", "diffaug")]
    code, out, _ = run(capsys, "describe", "discriminator", "diffaug")
    assert code == 0 and f"plugin: diffaug (gancr-diffaug {versions['gancr-diffaug']})" in out
    assert "inner" in out and "discriminator spec" in out and "policy" in out
    code, out, _ = run(capsys, "describe", "content_loss", "patchnce")
    assert code == 0 and "num_patches" in out and "temperature" in out and "layers" in out
    code, out, _ = run(capsys, "schema")
    defs = json.loads(out)["$defs"]
    assert {"ContentLoss_patchnce", "Discriminator_diffaug"} <= set(defs)


def test_patchnce_and_diffaug_train_together(tmp_path, image_dirs, capsys):
    spec = _spec(*image_dirs)
    path = tmp_path / "cut_diffaug.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0, err
    assert "discriminator diffaug" in out and "content patchnce+l1" in out

    trainer = Trainer(spec, tmp_path / "run", quiet=True)
    assert type(trainer.discriminator).__name__ == "DiffAugDiscriminator"
    patchnce = trainer.losses.content[0][1]
    assert type(patchnce).__name__ == "PatchNCELoss"
    assert all(t.loss is not patchnce for t in trainer.losses.reconstruction)  # not for C's reconstruction
    # the heads and the loss's encoder are trained with the generator's optimiser
    in_generator_optimiser = {id(p) for g in trainer.optimizers["generator"].param_groups for p in g["params"]}
    assert {id(p) for p in patchnce.parameters()} <= in_generator_optimiser
    heads, encoder, inner = params(patchnce.heads), params(patchnce.encoder), params(trainer.discriminator.inner)

    result = trainer.fit()
    assert result.status == "finished" and result.step == 3
    metrics = read_metrics(tmp_path / "run")
    joint = [m for m in metrics if m["stage"] == 2]
    assert len(joint) == 2 and all(torch.isfinite(torch.tensor(m["loss/content/patchnce"])) for m in joint)
    assert "loss/content/patchnce" not in metrics[0]  # stage 1 compares no content
    assert changed(heads, patchnce.heads) and changed(encoder, patchnce.encoder)
    assert changed(inner, trainer.discriminator.inner)
    assert (tmp_path / "run" / "generator.safetensors").exists()


def test_validate_says_which_requirement_is_missing_or_too_old_and_how_to_install_it(tmp_path, capsys):
    installed = importlib.metadata.version("gancr-cut")
    path = tmp_path / "needs.yaml"
    path.write_text(yaml.safe_dump({"requires": ["gancr-cut>=99", "gancr-no-such-plugin>=0.1", "gancr-diffaug>=0.1"]}))
    code, out, err = run(capsys, "validate", str(path), "--no-build")
    assert code == 2 and out == ""
    assert (
        f"requires.0: gancr-cut {installed} is installed but the spec needs gancr-cut>=99; "
        "upgrade it with: pip install --upgrade 'gancr-cut>=99'"
    ) in err
    assert "requires.1: gancr-no-such-plugin is not installed; install it with: pip install 'gancr-no-such-plugin>=0.1'" in err
    assert "requires.2" not in err  # gancr-diffaug is installed and new enough
    assert "2 errors in spec" in err
    # training refuses the same way, before building anything
    code, _, err = run(capsys, "train", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and "requires.0: gancr-cut" in err and not (tmp_path / "run").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_patchnce_and_diffaug_on_cuda(tmp_path, precision):
    """bf16 autocast and channels_last (CUDA's defaults), or fp16 with a scaler."""
    spec = _spec("unused", "unused")
    spec["training"].update(device="cuda", precision=precision, channels_last="auto", image_size=64)
    trainer = Trainer(spec, tmp_path / "run", quiet=True)
    heads = params(trainer.losses.content[0][1].heads)
    x, s = torch.rand(2, 3, 64, 64, device="cuda"), torch.rand(2, 3, 64, 64, device="cuda")
    metrics = [trainer.train_step(trainer.to_device(x), trainer.to_device(s)) for _ in range(3)]
    assert all(m["skipped"] == 0 for m in metrics)
    assert all(torch.isfinite(torch.tensor(m["loss/content/patchnce"])) for m in metrics[1:])
    assert changed(heads, trainer.losses.content[0][1].heads)


def test_a_missing_requirement_is_named_before_the_unknown_components_it_would_bring(tmp_path, capsys):
    from gancr.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text('requires: ["gancr-nonexistent>=1"]\nlosses:\n  content: [{name: fancy_loss}]\n')
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[1].strip().startswith("requires.0: gancr-nonexistent is not installed; install it with: "
                                     "pip install 'gancr-nonexistent>=1'")
    assert "losses.content.0: unknown content_loss 'fancy_loss'" in err[2]
