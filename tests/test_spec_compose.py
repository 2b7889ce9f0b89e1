"""Specs that compose: ``base:`` lists and several files merged in order, with errors that name
the file a value came from; ``gancr validate --print`` shows the result."""

from __future__ import annotations

import textwrap

import pytest
import yaml

import gancr
from gancr.cli import main
from gancr.errors import SpecError

from trainkit import EXAMPLES


def _write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def layered(tmp_path):
    """bases/model.yaml and bases/schedule.yaml, and run.yaml that builds on both."""
    _write(tmp_path / "bases" / "model.yaml", """\
        model:
          generator:
            encoder: {name: vgg19, layer: relu2_1}
            neck: {name: resblocks, blocks: 2}
          discriminator: {name: patchgan, layers: 2, width: 8}
        training: {image_size: 48}
        """)
    _write(tmp_path / "bases" / "schedule.yaml", """\
        base: model.yaml          # relative to this file
        training:
          stages: [{name: separate, steps: 3}, {name: joint, steps: 5}]
          image_size: 32
        """)
    return _write(tmp_path / "run.yaml", """\
        base: [bases/model.yaml, bases/schedule.yaml]
        model:
          generator:
            encoder: {name: conv, widths: [8, 16]}    # another component: replaces vgg19's mapping
            neck: {blocks: 1}                         # the same one: merged into the base's
        training:
          stages: [{name: joint, steps: 4}]           # lists replace
        """)


def test_bases_merge_in_order_and_the_spec_wins(layered):
    spec = gancr.load_spec(layered)
    g = spec.model.generator
    assert g.encoder.name == "conv" and list(g.encoder.widths) == [8, 16]
    assert g.neck.name == "resblocks" and g.neck.blocks == 1
    assert spec.model.discriminator.width == 8
    assert spec.training.image_size == 32  # schedule.yaml came after model.yaml
    assert [(s.name, s.steps) for s in spec.training.stages] == [("joint", 4)]
    assert "base" not in spec.to_dict()


def test_several_files_merge_like_bases(tmp_path, layered):
    extra = _write(tmp_path / "more.yaml", "training: {image_size: 40, batch_size: 3}\n")
    spec = gancr.load_spec([layered, extra])
    assert spec.training.image_size == 40 and spec.training.batch_size == 3
    assert spec.model.generator.encoder.name == "conv"
    assert gancr.load_spec([layered, {"training": {"batch_size": 5}}]).training.batch_size == 5


def test_an_error_inside_a_base_names_the_file_and_the_path(tmp_path, layered):
    _write(tmp_path / "bases" / "model.yaml", """\
        model:
          generator: {neck: {name: resblocks}}
          discriminator: {name: patchgan, layers: many}
        """)
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(layered)
    (path, message), = exc.value.errors
    assert path == "model.discriminator.layers"
    assert message.endswith(f"(in {tmp_path / 'bases' / 'model.yaml'})"), message
    assert exc.value.source == str(layered)


def test_missing_base_cycle_and_bad_base(tmp_path):
    run = _write(tmp_path / "run.yaml", "base: nowhere.yaml\n")
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(run)
    assert exc.value.source == str(run)
    assert exc.value.errors == [("base", f"base: no such spec file: {tmp_path / 'nowhere.yaml'}")]
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(SpecError, match="bases form a cycle: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        gancr.load_spec(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", "base: {x: 1}\n")
    with pytest.raises(SpecError, match="base: expected a path or a list of paths"):
        gancr.load_spec(tmp_path / "c.yaml")


def test_cli_train_and_validate_take_several_files_and_print_the_result(capsys, tmp_path, layered):
    extra = _write(tmp_path / "more.yaml", "training: {batch_size: 3}\n")
    assert main(["validate", str(layered), str(extra), "--no-build", "--print", "-q"]) == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out[: out.index(f"{layered} + {extra}: valid.")])
    assert resolved["training"]["batch_size"] == 3 and resolved["training"]["image_size"] == 32
    assert resolved["model"]["generator"]["encoder"] == {"name": "conv", "widths": [8, 16], "norm": "instance",
                                                          "freeze": False}
    assert "base" not in resolved
    bad = _write(tmp_path / "bad.yaml", "training: {batch_size: -1}\n")
    assert main(["validate", str(layered), str(bad), "--no-build"]) == 2
    err = capsys.readouterr().err
    assert f"training.batch_size: " in err and f"(in {bad})" in err


def test_the_examples_share_a_base():
    """The 128-pixel examples state only what differs from examples/bases/cartoon_128.yaml."""
    base = yaml.safe_load((EXAMPLES / "bases" / "cartoon_128.yaml").read_text())
    for name in ("perceptual_content.yaml", "shared_encoder.yaml", "timm_backbone.yaml"):
        text = yaml.safe_load((EXAMPLES / name).read_text())
        assert text["base"] == "bases/cartoon_128.yaml"
        assert "data" not in text
        spec = gancr.load_spec(EXAMPLES / name)
        assert spec.data.content == base["data"]["content"] and spec.training.image_size == 128
