"""The spec: loading (YAML, JSON, dict), errors by path, overrides, aliases, the schema."""

from __future__ import annotations

import json
import pytest
import yaml

import gancr
from gancr.components.content_losses import MSELoss
from gancr.components.necks import IdentityNeck
from gancr.errors import SpecError
from gancr.plugins import get_registry
from gancr.spec.requirements import check_requirements
from gancr.spec import apply_overrides, validate_component

SPEC = {
    "description": "a small spec",
    "model": {
        "generator": {
            "encoder": {"name": "vgg19", "layer": "relu2_1", "pretrained": False},
            "neck": {"name": "resblocks", "blocks": 2},
            "decoder": {"name": "upsample_conv"},
        },
        "content_net": {"share_encoder": False, "encoder": {"name": "conv", "widths": [8, 16]}},
        "discriminator": {"name": "patchgan", "layers": 2, "norm": "spectral"},
    },
    "losses": {
        "content": [{"name": "mse", "weight": 1.0}, {"name": "ssim", "weight": 0.5}],
        "style": [{"name": "lsgan"}],
    },
    "training": {
        "stages": [{"name": "separate", "steps": 20}, {"name": "joint", "steps": 80, "w_c": 0.5, "w_g": 0.5}],
        "balancer": {"name": "fixed"},
        "image_size": 64,
    },
    "data": {"content": "builtin:photos", "style": "builtin:cartoon"},
}


def errors_of(data, overrides=()) -> dict[str, str]:
    """{path: message} of a spec that must not validate."""
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(data, overrides)
    return dict(exc.value.errors)


# ----------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------


def test_yaml_json_dict_and_spec_inputs_are_equivalent(tmp_path):
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    yml_file = tmp_path / "spec.yml"
    yml_file.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    json_file = tmp_path / "spec.json"
    json_file.write_text(json.dumps(SPEC), encoding="utf-8")
    from_dict = gancr.load_spec(SPEC)
    resolved = from_dict.to_dict()
    for source in (yaml_file, str(yml_file), json_file):
        assert gancr.load_spec(source).to_dict() == resolved
    assert gancr.load_spec(from_dict).to_dict() == resolved  # a Spec itself
    assert gancr.load_spec(yaml.safe_load(from_dict.to_yaml())).to_dict() == resolved  # round trip
    # the values came through, defaults were filled in
    assert resolved["model"]["generator"]["encoder"] == {
        "name": "vgg19", "layer": "relu2_1", "pretrained": False, "weights": None, "freeze": False,
        "normalize": True,
    }
    assert resolved["losses"]["content"][1] == {"name": "ssim", "weight": 0.5, "window_size": 11, "luminance": False}
    assert resolved["training"]["batch_size"] == 4
    assert isinstance(from_dict, gancr.Spec)
    assert from_dict.training.total_steps == 100
    # the input mapping was not modified
    assert SPEC["model"]["generator"]["encoder"] == {"name": "vgg19", "layer": "relu2_1", "pretrained": False}


def test_default_spec_and_empty_file(tmp_path):
    spec = gancr.default_spec()
    assert spec.model.generator.encoder.name == "conv"
    assert [s.name for s in spec.training.stages] == ["separate", "joint"]
    assert spec.losses.style[0].name == "lsgan" and spec.training.balancer.name == "fixed"
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing but a comment\n", encoding="utf-8")
    assert gancr.load_spec(empty).to_dict() == spec.to_dict()


def test_invalid_yaml_names_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("model:\n  generator: [unclosed\n", encoding="utf-8")
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(bad)
    text = str(exc.value)
    assert f"in {bad}" in text and "not valid YAML" in text
    assert exc.value.source == str(bad)
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"model": ', encoding="utf-8")
    with pytest.raises(SpecError, match=r"not valid JSON") as exc:
        gancr.load_spec(bad_json)
    assert str(bad_json) in str(exc.value)
    with pytest.raises(SpecError, match="no such spec file: .*missing.yaml"):
        gancr.load_spec(tmp_path / "missing.yaml")


def test_a_spec_must_be_a_mapping(tmp_path):
    listing = tmp_path / "list.yaml"
    listing.write_text("- model\n- losses\n", encoding="utf-8")
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(listing)
    assert exc.value.errors == [("", "a spec must be a mapping at the top level, got list")]
    assert str(listing) in str(exc.value) and "<root>: a spec must be a mapping" in str(exc.value)
    with pytest.raises(SpecError, match="expected a path or a mapping, got int"):
        gancr.load_spec(42)  # type: ignore[arg-type]


def test_errors_in_a_file_carry_its_name(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("trainig: {}\n", encoding="utf-8")
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(path)
    assert str(exc.value).splitlines()[0] == f"1 error in spec in {path}:"


# ----------------------------------------------------------------------------------------
# errors by path
# ----------------------------------------------------------------------------------------


def test_unknown_component_names_list_close_matches_and_plugins():
    errors = errors_of({"model": {"generator": {"encoder": {"name": "vgg91"}, "decoder": {"name": "unte"}}}})
    encoders = ", ".join(get_registry().list("encoder"))
    assert errors["model.generator.encoder"] == (
        f"unknown encoder 'vgg91'. Did you mean 'vgg19', 'vgg16'? Known: {encoders}. "
        f"Plugins loaded: {', '.join(get_registry().plugins)}."
    )
    assert "Did you mean 'unet'?" in errors["model.generator.decoder"]
    style = errors_of({"losses": {"style": [{"name": "lsgan"}, {"name": "lsgna"}]}})
    assert style["losses.style.1"].startswith("unknown style_loss 'lsgna'. Did you mean 'lsgan'?")


def test_wrong_types_give_the_field_path():
    errors = errors_of({
        "model": {"generator": {"encoder": {"name": "conv", "widths": "wide"},
                                "neck": {"name": "resblocks", "blocks": "four"}}},
        "training": {"batch_size": "many", "seed": 1.5, "stages": {"name": "joint"}},
        "losses": {"content": [{"name": "l1", "weight": "heavy"}]},
    })
    assert errors["model.generator.encoder.widths"] == "Input should be a valid list"
    assert "valid integer" in errors["model.generator.neck.blocks"]
    assert "valid integer" in errors["training.batch_size"]
    assert "fractional part" in errors["training.seed"]
    assert "valid list" in errors["training.stages"]
    assert "valid number" in errors["losses.content.0.weight"]


def test_allowed_values_are_listed():
    errors = errors_of({"model": {"generator": {"encoder": {"name": "vgg19", "layer": "relu9_1"}},
                                  "discriminator": {"name": "patchgan", "norm": "group"}}})
    assert "'relu1_1'" in errors["model.generator.encoder.layer"]
    assert "'relu5_4'" in errors["model.generator.encoder.layer"]
    assert errors["model.discriminator.norm"] == "Input should be 'instance', 'batch', 'spectral' or 'none'"


def test_a_component_needs_a_name():
    errors = errors_of({"model": {"generator": {"encoder": {"layer": "relu2_1"}, "neck": "resblocks",
                                                "decoder": {"name": 7}}}})
    encoders = ", ".join(get_registry().list("encoder"))
    assert errors["model.generator.encoder"] == f"an encoder needs a 'name'; one of: {encoders}"
    assert errors["model.generator.neck"].startswith("expected a neck spec (a mapping with 'name'), got 'resblocks'")
    assert errors["model.generator.decoder"].startswith("unknown decoder 7. Known:")


def test_missing_required_fields():
    errors = errors_of({"training": {"stages": [{"name": "joint"}, {"steps": 3}]}})
    assert errors["training.stages.0.steps"] == "required field is missing"
    assert errors["training.stages.1.name"] == "required field is missing"


def test_unknown_fields_are_errors_with_did_you_mean():
    errors = errors_of({
        "trainig": {},
        "model": {"generator": {"encoder": {"name": "conv", "widht": [8]}, "neck": {"name": "none", "blocks": 2}}},
        "training": {"optimizer": {"lr": {"generatr": 0.1}}, "stages": [{"name": "joint", "steps": 1, "wc": 2}]},
        "losses": {"content": [{"name": "perceptual", "encoder": {"name": "vgg19", "layers": "relu2_1"}}]},
    })
    assert errors["trainig"].startswith("unknown field (did you mean 'training'?); allowed fields: data, description")
    assert errors["model.generator.encoder.widht"] == (
        "unknown field (did you mean 'widths'?); allowed fields: freeze, name, norm, widths"
    )
    assert errors["model.generator.neck.blocks"] == "unknown field; allowed fields: name"
    assert "did you mean 'generator'?" in errors["training.optimizer.lr.generatr"]
    assert "did you mean 'w_c'?" in errors["training.stages.0.wc"]
    assert "did you mean 'layer'?" in errors["losses.content.0.encoder.layers"]


def test_unknown_and_invalid_fields_are_reported_together():
    with pytest.raises(SpecError) as exc:
        gancr.load_spec({"model": {"generator": {"encoder": {"name": "vgg19", "lyer": "x", "layer": "relu0"}}},
                         "training": {"batch_size": 0}})
    paths = [p for p, _ in exc.value.errors]
    assert paths == ["model.generator.encoder.lyer", "model.generator.encoder.layer", "training.batch_size"]
    assert str(exc.value).startswith("3 errors in spec:\n  model.generator.encoder.lyer: unknown field")


def test_share_encoder_and_content_net_encoder_rules():
    errors = errors_of({"model": {"content_net": {"share_encoder": True, "encoder": {"name": "conv"}}}})
    assert errors["model.content_net"] == (
        "content_net.encoder must be omitted when share_encoder is true "
        "(the content net uses the generator's encoder)"
    )
    errors = errors_of({"model": {"content_net": {"decoder": {"name": "unet"}}}})
    assert errors["model.content_net"] == "content_net needs an encoder, or share_encoder: true"
    shared = gancr.load_spec({"model": {"content_net": {"share_encoder": True}}})
    assert shared.model.content_net.encoder is None and shared.model.content_net.decoder is None


def test_nested_slots_are_validated_with_paths():
    errors = errors_of({"losses": {
        "content": [{"name": "l1"}, {"name": "perceptual", "encoder": {"name": "vgg19", "layer": "relu9_9"}}],
        "style": [{"name": "lsgan"}, {"name": "gram", "encoder": {"name": "vgg91"}}],
    }})
    assert "'relu1_1'" in errors["losses.content.1.encoder.layer"]
    assert errors["losses.style.1.encoder"].startswith("unknown encoder 'vgg91'. Did you mean 'vgg19', 'vgg16'?")
    # and a valid nested slot is bound to the component's own model, defaults filled in
    spec = gancr.load_spec({"losses": {"content": [{"name": "perceptual", "encoder": {"name": "conv"}}]}})
    assert spec.losses.content[0].encoder.widths == [32, 64, 128]
    default = gancr.load_spec({"losses": {"content": [{"name": "perceptual"}]}})
    assert (default.losses.content[0].encoder.name, default.losses.content[0].encoder.layer) == ("vgg19", "relu3_1")


def test_a_component_parameter_named_like_the_component_has_a_clean_path():
    """The union tag in pydantic's error location must not be mistaken for a field."""

    class Params(gancr.ComponentParams):
        scale: float = 1.0

    class Plugin:
        @gancr.hookimpl
        def gancr_register_components(self, registry):
            registry.register("neck", "scale", lambda channels, scale: None, params=Params)

    with gancr.registered_plugin(Plugin(), "scale-plugin"):
        errors = errors_of({"model": {"generator": {"neck": {"name": "scale", "scale": "big"}}}})
    assert list(errors) == ["model.generator.neck.scale"]


def test_aliases_are_accepted():
    spec = gancr.load_spec({
        "model": {"generator": {"encoder": {"name": "conv", "widths": [4, 8]}, "neck": {"name": "none"}},
                  "content_net": {"share_encoder": True},
                  "discriminator": {"name": "patchgan", "layers": 1, "width": 4}},
        "losses": {"content": [{"name": "l2", "weight": 2.0}], "style": [{"name": "nonsaturating"}]},
        "training": {"image_size": 16},
    })
    assert spec.losses.content[0].weight == 2.0
    trio = gancr.build(spec)
    assert isinstance(trio.generator.neck, IdentityNeck)
    losses = gancr.build_losses(spec)
    assert isinstance(losses.content[0][1], MSELoss) and losses.content[0][0] == 2.0
    assert type(losses.style[0][1]).__name__ == "VanillaGAN"


def test_validate_component_alone():
    params = validate_component("encoder", "conv")
    assert params.name == "conv" and params.widths == [32, 64, 128]
    assert validate_component("encoder", params) is params  # already bound: kept as is
    with pytest.raises(SpecError) as exc:
        validate_component("encoder", {"name": "conv", "norm": "group"})
    assert exc.value.errors[0][0] == "encoder.norm"
    with pytest.raises(SpecError) as exc:
        validate_component("encoder", {"name": "conv", "norm": "group"}, path="my.encoder")
    assert exc.value.errors[0][0] == "my.encoder.norm"


def test_field_constraints():
    errors = errors_of({
        "training": {"stages": [], "image_size": 8, "precision": "fp8"},
        "data": {"crop_scale": [0.9, 0.5]},
        "losses": {"style": []},
    })
    assert "at least 1 item" in errors["training.stages"]
    assert "greater than or equal to 16" in errors["training.image_size"]
    assert "'auto', 'fp32', 'bf16' or 'fp16'" in errors["training.precision"]
    assert "0 < low <= high <= 1" in errors["data.crop_scale"]
    assert "at least 1 item" in errors["losses.style"]


# ----------------------------------------------------------------------------------------
# overrides
# ----------------------------------------------------------------------------------------


def test_overrides_set_fields_by_path_with_list_indices(tmp_path):
    spec = gancr.load_spec(SPEC, ["training.stages.0.steps=5", "training.stages.-1.w_c=0.25"])
    assert [s.steps for s in spec.training.stages] == [5, 80]
    assert spec.training.stages[1].w_c == 0.25
    # overrides reach defaults that the spec does not spell out
    spec = gancr.load_spec({}, ["training.stages.1.steps=7", "training.optimizer.lr.generator=0.001"])
    assert spec.training.stages[1].steps == 7 and spec.training.optimizer.lr.generator == 0.001
    # and work on files
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    assert gancr.load_spec(path, ["training.batch_size=2"]).training.batch_size == 2


def test_override_values_are_parsed_as_yaml():
    spec = gancr.load_spec(SPEC, [
        "model.generator.neck={name: identity}",
        "training.grad_clip=null",
        "training.grad_clip=1.5",
        "training.channels_last=true",
        "data.content=[a, b]",
        "description=",
        "training.device=cuda:1",
    ])
    assert spec.model.generator.neck.name == "identity"
    assert spec.training.grad_clip == 1.5 and spec.training.channels_last is True
    assert spec.data.content == ["a", "b"] and spec.description == ""
    assert spec.training.device == "cuda:1"
    assert gancr.load_spec(SPEC, ["training.grad_clip=null"]).training.grad_clip is None


def test_overrides_can_fix_an_invalid_spec():
    broken = {"model": {"generator": {"encoder": {"name": "vgg91"}}}}
    spec = gancr.load_spec(broken, ["model.generator.encoder.name=vgg19"])
    assert spec.model.generator.encoder.name == "vgg19"


def test_bad_overrides():
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(SPEC, ["training.stages.5.steps=1"])
    assert exc.value.errors == [("training.stages.5", "index 5 is out of range (the list has 2 items)")]
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(SPEC, ["training.stages.first.steps=1"])
    assert exc.value.errors == [("training.stages.first", "training.stages is a list: use an index, got 'first'")]
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(SPEC, ["training.batch_size.value=1"])
    assert exc.value.errors == [("training.batch_size.value", "cannot set a field inside int value 4")]
    with pytest.raises(SpecError, match="an override must look like path.to.field=value"):
        gancr.load_spec(SPEC, ["training.batch_size"])
    with pytest.raises(SpecError, match="an override needs a path before '='"):
        gancr.load_spec(SPEC, ["=3"])
    with pytest.raises(SpecError, match="cannot parse the value"):
        gancr.load_spec(SPEC, ["training.batch_size=[1"])
    # a misspelt path is an unknown field, with a suggestion
    errors = errors_of(SPEC, ["training.stagse.0.steps=5"])
    assert "did you mean 'stages'?" in errors["training.stagse"]
    # a value of the wrong type is an ordinary validation error at that path
    assert "valid integer" in errors_of(SPEC, ["training.stages.0.steps=many"])["training.stages.0.steps"]


def test_apply_overrides_returns_a_copy():
    data = {"training": {"stages": [{"name": "joint", "steps": 9}]}}
    out = apply_overrides(data, ["training.stages.0.steps=5", "training.new.deep=1"])
    assert out == {"training": {"stages": [{"name": "joint", "steps": 5}], "new": {"deep": 1}}}
    assert data == {"training": {"stages": [{"name": "joint", "steps": 9}]}}


# ----------------------------------------------------------------------------------------
# the shape of a spec: depth, values with aliases expanded, cycles
# ----------------------------------------------------------------------------------------


def _laughs(levels: int, width: int = 10) -> list:
    """A "billion laughs" as Python data: each level a list of ``width`` references to the one below."""
    value: list = ["lol"] * width
    for _ in range(levels):
        value = [value] * width
    return value


def test_the_shape_is_measured_on_shared_objects_once():
    from gancr.storage.integrity import MAX_DEPTH, overrun

    assert overrun({"model": {"generator": {"encoder": {"name": "conv"}}}}) is None
    assert overrun("a string") is None
    found = overrun({"description": _laughs(20)})  # 10^21 values, expanded
    # the place is the smallest list over the limit: 5 levels above the strings (1,111,111 values)
    assert (found.limit, found.path) == ("values", ("description",) + (0,) * 15)
    assert "holds more than 1,000,000 values" in found.describe()
    assert "_laughs" not in repr(found) and len(repr(found)) < 300  # never expands what it found
    # depth adds up through a shared object, used here at the top and again one level down
    chain: list = [0]
    for _ in range(MAX_DEPTH - 2):
        chain = [chain]
    assert overrun({"a": chain, "b": chain}) is None
    found = overrun({"a": chain, "b": [chain]})
    assert (found.limit, found.path, found.describe()) == ("depth", ("b", 0), f"nests more than {MAX_DEPTH} levels deep")
    loop: list = [1]
    loop.append({"again": loop})
    assert overrun({"x": loop}).limit == "cycle"


def test_an_alias_bomb_is_refused_at_once_naming_the_place_and_the_anchor(tmp_path):
    lines = ["training: {seed: 1}", "requires:", "  - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  - &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(path)
    (where, message), = exc.value.errors
    assert where == "requires.5"
    assert message.startswith("the spec holds more than 1,000,000 values")
    assert message.endswith("see the anchor &l5 (line 8, column 5)")
    # a --set value is read the same way
    flow = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x, x]"] + [f"&{c} [{', '.join([f'*{p}'] * 10)}]"
                                                                  for p, c in zip("abcdefgh", "bcdefghi")]) + "]"
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(SPEC, [f"description={flow}"])
    (where, message), = exc.value.errors
    assert where == "description.5" and message.startswith("the value of --set holds more than 1,000,000 values")
    assert "the anchor &f (line 1" in message
    # an anchor used within itself has no end
    with pytest.raises(SpecError, match=r"training.stages.0: the value of --set holds itself .*see the anchor &s \(line 1"):
        gancr.load_spec(SPEC, ["training.stages=&s [*s]"])
    with pytest.raises(SpecError, match="cannot parse the value: it nests too deeply"):
        gancr.load_spec(SPEC, ["description=" + "[" * 5000 + "]" * 5000])


def test_shared_values_within_the_limits_are_fine_and_checked_once():
    text = """model:
  generator:
    encoder: &enc {name: conv, widths: [8, 16]}
  content_net:
    encoder: *enc
training:
  optimizer:
    lr: &lr {generator: .nan, discriminator: 0.0002}
  stages: [{name: separate, steps: 1}, {name: joint, steps: 1}]
losses: {content: [&l1 {name: l1}, *l1]}
"""
    with pytest.raises(SpecError) as exc:
        gancr.load_spec(yaml.safe_load(text))
    assert exc.value.errors == [("training.optimizer.lr.generator", "must be a finite number, got nan")]
    spec = gancr.load_spec(yaml.safe_load(text.replace(".nan", "0.001")))
    assert spec.model.content_net.encoder.widths == [8, 16] and len(spec.losses.content) == 2


# ----------------------------------------------------------------------------------------
# the schema and requirements
# ----------------------------------------------------------------------------------------


def test_schema_has_every_registered_component():
    schema = gancr.Spec.model_json_schema()
    json.dumps(schema)  # plain data
    defs = schema["$defs"]
    prefix = {"encoder": "Encoder", "neck": "Neck", "decoder": "Decoder", "discriminator": "Discriminator",
              "content_loss": "ContentLoss", "style_loss": "StyleLoss", "balancer": "Balancer"}
    for entry in get_registry().entries():
        model = defs[f"{prefix[entry.kind]}_{entry.name}"]
        name = model["properties"]["name"]
        assert name.get("enum", [name.get("const")]) == list(entry.names)
        assert model["additionalProperties"] is False
        if entry.kind in ("content_loss", "style_loss"):
            assert model["properties"]["weight"]["default"] == 1.0
    vgg = defs["Encoder_vgg19"]["properties"]
    assert vgg["layer"]["default"] == "relu4_1" and "relu3_1" in vgg["layer"]["enum"]
    # the generator's encoder slot offers every encoder
    slot = json.dumps(defs["GeneratorSpec"]["properties"]["encoder"])
    for name in get_registry().list("encoder"):
        assert f"Encoder_{name}" in slot


def test_requirements_are_checked():
    assert check_requirements(gancr.load_spec({"requires": ["pluggy>=1"]})) is None
    spec = gancr.load_spec({"requires": ["gancr-no-such-plugin>=0.1", "pluggy>=999", "not a requirement!"]})
    with pytest.raises(SpecError) as exc:
        check_requirements(spec)
    errors = dict(exc.value.errors)
    assert "gancr-no-such-plugin is not installed; install it with: pip install 'gancr-no-such-plugin>=0.1'" in (
        errors["requires.0"]
    )
    assert "is installed but the spec needs pluggy>=999" in errors["requires.1"]
    assert "is not a requirement like" in errors["requires.2"]
