"""The ``gancr`` command: help, components, describe, validate, schema (in process), and one
run of the installed console script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gancr import __version__
from gancr.cli import COMMANDS, main
from gancr.plugins import get_registry

from conftest import SMALL_SPEC


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_imports_neither_torch_nor_pydantic():
    """``gancr --help`` builds every command's parser; the command modules import the heavy parts
    only when they run."""
    code = (
        "import sys\nfrom gancr.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('loaded:', *(m for m in ('torch', 'pydantic', 'numpy', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "loaded:"


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL_SPEC), encoding="utf-8")
    return path


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gancr")
    for name in ("components", "describe", "validate", "schema"):
        assert name in out
    for name, _, _ in COMMANDS:
        assert name in out
    # no command: the help, and a usage error
    code, out, _ = run(capsys)
    assert code == 2 and "components" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"gancr {__version__}"


def test_components_lists_names_plugins_and_summaries(capsys):
    code, out, err = run(capsys, "components")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PLUGIN", "SUMMARY"]
    registry = get_registry()
    assert len(lines) == 1 + len(registry.entries())
    for entry in registry.entries():
        (line,) = [l for l in lines[1:] if l.split()[:2] == [entry.kind, entry.name]]
        assert entry.plugin in line and entry.summary in line
    vgg = next(l for l in lines if l.split()[:2] == ["encoder", "vgg19"])
    assert f"builtin (gancr {__version__})" in vgg and "VGG19 (torchvision) up to a named layer" in vgg


def test_components_of_one_kind_with_a_pattern_and_formats(capsys):
    code, out, _ = run(capsys, "components", "encoder")
    assert code == 0
    names = [l.split()[1] for l in out.splitlines()[1:]]
    assert names == get_registry().list("encoder") and {"conv", "timm", "vgg19"} <= set(names)
    assert all(l.split()[0] == "encoder" for l in out.splitlines()[1:])
    code, out, _ = run(capsys, "components", "decoder", "--pattern", "u*", "--json")
    assert code == 0
    rows = json.loads(out)
    assert {r["name"] for r in rows} == {"unet", "upsample_conv"}
    assert set(rows[0]) == {"kind", "name", "plugin", "summary"}
    code, out, _ = run(capsys, "components", "--markdown")
    assert code == 0 and out.startswith("# Component catalogue")
    assert "## encoder" in out and "### `vgg19`" in out and "| `layer` |" in out
    assert "### `mse` (aliases: `l2`)" in out


def test_components_of_an_unknown_kind(capsys):
    code, out, err = run(capsys, "components", "encodr")
    assert code == 2 and out == ""
    assert err.startswith("gancr components: error: unknown component kind 'encodr'. Did you mean 'encoder'?")
    assert "Traceback" not in err


def test_describe_shows_parameters_defaults_and_doc(capsys):
    code, out, _ = run(capsys, "describe", "encoder", "vgg19")
    assert code == 0
    assert out.startswith("encoder 'vgg19'\n  plugin: builtin")
    assert "factory: gancr.components.encoders.VGG19Encoder" in out
    assert "VGG19 (torchvision) up to a named layer" in out
    assert "  parameters:" in out
    assert "= 'relu4_1'" in out and "'relu1_1' | 'relu1_2'" in out
    assert "pretrained  bool = False" in out and "weights     str | None = None" in out
    assert "deepest layer; the relu*_1 layers before it are returned too" in out
    assert "build arguments from the trio: no extra arguments" in out
    code, out, _ = run(capsys, "describe", "content_loss", "mse")
    assert "aliases: l2" in out and re.search(r"weight +float = 1.0", out)
    code, out, _ = run(capsys, "describe", "content_loss", "perceptual")
    assert re.search(r"encoder +encoder spec = \{'name': 'vgg19', 'layer': 'relu3_1'\}", out)
    code, out, _ = run(capsys, "describe", "neck", "identity")
    assert "parameters: (none)" in out


def test_describe_an_unknown_component(capsys):
    code, out, err = run(capsys, "describe", "encoder", "vgg91")
    assert code == 2 and out == ""
    assert "gancr describe: error: unknown encoder 'vgg91'. Did you mean 'vgg19', 'vgg16'?" in err
    assert "Traceback" not in err


def test_validate_a_good_spec(capsys, spec_file):
    code, out, err = run(capsys, "validate", str(spec_file))
    assert code == 0 and err == ""
    line, *checks = out.splitlines()
    assert any(c.startswith("  ok trio: generator") for c in checks)
    assert any(c.startswith("  ok data.style: builtin:cartoon: 7 image(s)") for c in checks)
    assert any(c.startswith("  not checked: ") for c in checks)
    assert line.startswith(f"{spec_file}: valid. generator conv>resblocks>upsample_conv; content net conv>upsample_conv;")
    assert "discriminator patchgan; content l1; style lsgan; balancer fixed; stages separate 200, joint 800" in line
    assert line.endswith("M parameters")
    code, out, _ = run(capsys, "validate", str(spec_file), "--no-build", "--set", "training.stages.0.steps=7",
                       "--set", "model.content_net={share_encoder: true}")
    assert code == 0
    assert "stages separate 7, joint 800" in out and "content net shared encoder>upsample_conv" in out
    assert "parameters" not in out


def test_validate_a_bad_spec_gives_the_errors_by_path(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model:\n  generator:\n    encoder: {name: vgg91}\n    neck: {name: resblocks, blocks: many}\n"
        "training: {batch_sise: 2}\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 2 and out == ""
    assert err.startswith(f"gancr validate: 3 errors in spec in {bad}:")
    assert "  model.generator.encoder: unknown encoder 'vgg91'. Did you mean 'vgg19', 'vgg16'?" in err
    assert "  model.generator.neck.blocks: Input should be a valid integer" in err
    assert "  training.batch_sise: unknown field (did you mean 'batch_size'?)" in err
    assert "Traceback" not in err


def test_validate_reports_bad_overrides_files_and_builds(capsys, spec_file, tmp_path):
    code, _, err = run(capsys, "validate", str(spec_file), "--set", "training.stages.9.steps=1")
    assert code == 2 and "training.stages.9: index 9 is out of range (the list has 2 items)" in err
    code, _, err = run(capsys, "validate", str(tmp_path / "nowhere.yaml"))
    assert code == 2 and "no such spec file" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [\n", encoding="utf-8")
    code, _, err = run(capsys, "validate", str(broken))
    assert code == 2 and str(broken) in err and "not valid YAML" in err
    code, _, err = run(capsys, "validate", str(spec_file), "--set", "model.generator.neck.in_channels=256")
    assert code == 2 and f"{spec_file}: 1 problem(s) train would stop at:\n  trio: model.generator: neck 'resblocks'" in err
    assert "expects 256 input channels" in err and "Traceback" not in err
    code, _, err = run(capsys, "validate", str(spec_file), "--set", "requires=[gancr-no-such-plugin]")
    assert code == 2 and "requires.0: gancr-no-such-plugin is not installed" in err


def test_schema_prints_the_json_schema_with_components(capsys, tmp_path):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "gancr spec"
    for name in ("Encoder_vgg19", "Encoder_timm", "Neck_resblocks", "Decoder_unet", "Discriminator_patchgan",
                 "ContentLoss_perceptual", "StyleLoss_wgan_gp", "Balancer_fixed"):
        assert name in schema["$defs"]
    assert schema["$defs"]["Encoder_vgg19"]["properties"]["layer"]["default"] == "relu4_1"
    target = tmp_path / "schema.json"
    code, out, _ = run(capsys, "schema", "--out", str(target))
    assert code == 0 and out.strip() == f"wrote the spec schema to {target}"
    assert json.loads(target.read_text(encoding="utf-8")) == schema


def test_the_console_script_runs():
    script = Path(sys.executable).with_name("gancr")
    if not script.exists():  # pragma: no cover - not installed with its scripts
        pytest.skip(f"no console script next to {sys.executable}")
    result = subprocess.run([str(script), "components", "neck"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PLUGIN", "SUMMARY"]
    assert {l.split()[1] for l in lines[1:]} >= {"identity", "resblocks"}
