"""The command line as pytest and pip users expect it: -q/-v everywhere, warnings as
``gancr: warning: ...``, progress as a bar on a terminal and plain lines in a log,
``gancr validate`` checking what training needs (and ``--json``), shell completion."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import warnings

import pytest
import yaml

from gancr.cli import COMMANDS, build_parser, main
from gancr.progress import Progress

from trainkit import (
    gancr_command,
    image_dirs,  # noqa: F401 - fixture
    run_gancr,
    subprocess_env,
    tiny_spec,
    write_folder,
)


def _leaf_commands() -> list[list[str]]:
    """Every runnable subcommand, as the words before its options (bench's benchmarks too)."""
    from gancr import bench

    out = []
    for name, _, _ in COMMANDS:
        if name == "bench":
            out += [["bench", b] for b, *_ in bench.BENCHMARKS]
        else:
            out.append([name])
    return out


@pytest.mark.parametrize("words", _leaf_commands(), ids=" ".join)
def test_every_command_takes_quiet_and_verbose(words):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[words[0]]  # noqa: SLF001 - read the built parser
    if len(words) > 1:
        sub = sub._subparsers._group_actions[0].choices[words[1]]  # noqa: SLF001
    options = {o for action in sub._actions for o in action.option_strings}  # noqa: SLF001
    assert {"-q", "--quiet", "-v", "--verbose"} <= options, words


def test_warnings_print_as_one_gancr_line(capsys, tmp_path, monkeypatch):
    """The style loss on a random encoder warns: one line, no source line; -v adds where; -qq none."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"losses": {"style": [{"name": "lsgan"}, {"name": "gram"}]}}))
    from gancr.components import base

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        monkeypatch.setattr(base, "_warned_untrained", set())  # it warns once per process
        assert main(["validate", str(spec), "-q"]) == 0
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert any(line.startswith("gancr: warning: style loss 'gram' uses a randomly initialised encoder") for line in lines)
        assert all(line.startswith("gancr: warning: ") for line in lines), err  # no source lines
        monkeypatch.setattr(base, "_warned_untrained", set())
        assert main(["validate", str(spec), "-v"]) == 0
        err = capsys.readouterr().err
        assert "[UserWarning at " in err and ".py:" in err
        monkeypatch.setattr(base, "_warned_untrained", set())
        assert main(["validate", str(spec), "-qq"]) == 0
        assert capsys.readouterr().err == ""


def test_verbose_adds_the_traceback_of_an_error(capsys, tmp_path):
    missing = tmp_path / "none.yaml"
    assert main(["stylize", "--checkpoint", str(missing), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["stylize", "--checkpoint", str(missing), str(tmp_path), "--out", str(tmp_path / "o"), "-v"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_progress_plain_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.setenv("GANCR_PROGRESS_EVERY", "3")
    stream = io.StringIO()
    with Progress(7, "stylize", "image", stream=stream) as shown:
        for _ in range(7):
            shown.update(1, "x 1.0")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split(" (")[0] for line in lines] == ["stylize: image 3/7", "stylize: image 6/7", "stylize: image 7/7"]
    assert lines[-1].endswith("x 1.0")
    bar = io.StringIO()
    with Progress(3, "train", "step", stream=bar, terminal=True) as shown:
        shown.update(3)
    assert "\r" in bar.getvalue() and "3/3" in bar.getvalue()  # tqdm's bar on a terminal
    quiet = io.StringIO()
    with Progress(3, "train", "step", stream=quiet, enabled=False) as shown:
        shown.update(3)
    assert quiet.getvalue() == ""


def test_train_into_a_log_writes_plain_progress_lines(tmp_path, image_dirs):
    content, style = image_dirs
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(content, style)))
    result = run_gancr("train", str(spec), "--out", str(tmp_path / "run"),
                       env=subprocess_env(GANCR_PROGRESS_EVERY="2"))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("stage ")]
    assert [line.split(" (")[0] for line in progress] == ["stage 1/2 separate: step 2/4", "stage 2/2 joint: step 4/4"]
    assert "img/s" in progress[-1]
    # the held-out stylisation and -q: no progress at all
    quiet = run_gancr("stylize", "--checkpoint", str(tmp_path / "run"), str(content), "--out", str(tmp_path / "o"), "-q",
                      env=subprocess_env(GANCR_PROGRESS_EVERY="1"))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    shown = run_gancr("stylize", "--checkpoint", str(tmp_path / "run"), str(content), "--out", str(tmp_path / "o"),
                      env=subprocess_env(GANCR_PROGRESS_EVERY="2"))
    assert [line.split(" (")[0] for line in shown.stderr.splitlines()[:2]] == ["stylize: image 2/4", "stylize: image 4/4"]


# ----------------------------------------------------------------------------------------
# gancr validate: what train would fail on at once
# ----------------------------------------------------------------------------------------


def test_validate_finds_missing_data_weights_and_loss_encoders(capsys, tmp_path, image_dirs):
    content, style = image_dirs
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = tiny_spec(tmp_path / "no-such-folder", empty)
    spec["losses"]["content"] = [{"name": "perceptual", "encoder": {"name": "vgg19", "layer": "relu1_1",
                                                                     "weights": str(tmp_path / "vgg.pth")}}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}: 4 problem(s) train would stop at:\n")
    assert f"  weights files: losses.content.0.encoder.weights: no such file {tmp_path / 'vgg.pth'}" in err
    assert "  data.content: data.content: " in err and "no-such-folder" in err
    assert f"  data.style: data.style: " in err and "no images" in err
    assert "  losses: " in err and "vgg.pth" in err

    assert main(["validate", str(path), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert failed == {"weights files", "data.content", "data.style", "losses"}
    assert report["not_checked"]

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tiny_spec(content, style)))
    assert main(["validate", str(good), "--json", "--print"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["generator_parameters"] > 0
    assert report["resolved"]["training"]["stages"][0]["steps"] == 2
    assert {c["name"] for c in report["checks"]} == {
        "requirements", "device", "weights files", "data.content", "data.style", "trio", "losses", "optimisers"}
    assert main(["validate", str(good), "--no-build"]) == 0
    out = capsys.readouterr().out
    assert "  not checked: the trio, losses, balancer and optimisers (validate --no-build)" in out


def test_validate_json_of_a_spec_that_does_not_validate(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training: {batch_sise: 2}\n")
    assert main(["validate", str(path), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report == {"spec": [str(path)], "valid": False, "errors": [
        {"path": "training.batch_sise", "message": report["errors"][0]["message"]}]}
    assert "batch_size" in report["errors"][0]["message"]


# ----------------------------------------------------------------------------------------
# shell completion
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(capsys, shell):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "gancr" in script and "_ARGCOMPLETE" in script


def _complete(line: str, tmp_path) -> list[str]:
    """What the installed gancr answers a shell's completion request for ``line`` (argcomplete's protocol)."""
    out = tmp_path / "completions"
    env = subprocess_env(_ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line, COMP_POINT=str(len(line)),
                         _ARGCOMPLETE_STDOUT_FILENAME=str(out))
    result = subprocess.run(gancr_command(), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [word.strip() for word in out.read_text().split("\n")]


def test_completion_completes_commands_and_options(tmp_path):
    assert set(_complete("gancr val", tmp_path)) == {"validate"}
    assert {"--json", "--print", "--no-build", "--quiet"} <= set(_complete("gancr validate x.yaml --", tmp_path))
    assert {"bash", "zsh", "fish"} <= set(_complete("gancr completion ", tmp_path))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_through_the_printed_script(tmp_path):
    script = tmp_path / "gancr.bash"
    script.write_text(subprocess.run([*gancr_command(), "completion", "bash"], capture_output=True, text=True,
                                     env=subprocess_env(), check=True).stdout)
    bin_dir = os.path.dirname(gancr_command()[0])
    probe = (f'PATH="{bin_dir}:$PATH"; source "{script}"; COMP_WORDS=(gancr comp); COMP_CWORD=1; '
             'COMP_LINE="gancr comp"; COMP_POINT=${#COMP_LINE}; _python_argcomplete gancr; echo "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert result.stdout.split() == ["completion", "components"] or set(result.stdout.split()) == {"completion", "components"}, result


def test_resume_without_tensorboard_installed_does_not_see_a_changed_spec(tmp_path, image_dirs, monkeypatch):
    """tensorboard: true with TensorBoard missing writes metrics.jsonl only, and leaves the spec as it was."""
    import sys

    from gancr.training import Trainer

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails: not installed
    content, style = image_dirs
    spec = tiny_spec(content, style, training={"tensorboard": True})
    assert Trainer(spec, tmp_path / "run", quiet=True, max_steps=2).fit().status == "max_steps"
    assert yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())["training"]["tensorboard"] is True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(spec, tmp_path / "run", quiet=True, resume=True)
        assert trainer.fit().status == "finished"
    assert not [w for w in caught if "changed settings" in str(w.message)]
    assert not (tmp_path / "run" / "tensorboard").exists()
