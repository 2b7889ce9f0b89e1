"""Nothing a user does loses or silently corrupts data (issue 11, A-G), each through the command a
user runs, on real folders and files:

A. ``stylize DIR --out DIR`` never overwrites an input;
B. outputs whose names would collide get unique names, and the count is true;
C. a run folder is used by one process at a time (a lock the OS releases when the process dies);
D. a new training never replaces another run's files without ``--resume`` or ``--overwrite``;
E. a failed export (a full disk, a failed check) leaves the previous file as it was;
F. a changed byte in a checkpoint or generator file is found on load (resume falls back);
G. non-finite numbers in a spec, non-finite weights, and parity checks on NaN are refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import gancr
from gancr.errors import CheckpointError, WriteError
from gancr.storage import RunDir, load_checkpoint, read_generator_file, save_generator
from gancr.storage.files import RunLock
from gancr.training import Trainer

from faultkit import flip_tensor_byte, full_disk, hold_run_folder, snapshot, temporary_files
from inferencekit import run_cli, write_run
from trainkit import image_dirs, tiny_spec, write_image  # noqa: F401 - image_dirs is a fixture


@pytest.fixture(scope="module")
def trained(image_dirs, tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints at steps 2 and 4, generator.safetensors, metrics.jsonl."""
    out = tmp_path_factory.mktemp("safety") / "run"
    spec = tiny_spec(*image_dirs, training={"checkpoint": {"every": 2, "keep": 5}})
    assert Trainer(spec, out, quiet=True).fit().status == "finished"
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


# ----------------------------------------------------------------------------------------
# A and B: stylize's outputs
# ----------------------------------------------------------------------------------------


def test_a_stylize_into_its_own_input_folder_is_refused_and_the_photos_stay(tmp_path):
    run = write_run(tmp_path / "run")
    photos = tmp_path / "photos"
    write_image(photos / "beach.png", seed=1)
    write_image(photos / "street.jpg", seed=2)
    before = snapshot(photos)
    code, out, err = run_cli("stylize", str(photos), "--checkpoint", str(run), "--out", str(photos))
    assert code == 2, err
    assert "would overwrite the input" in err and "beach.png" in err and "Traceback" not in err
    assert snapshot(photos) == before  # nothing written, nothing replaced


def test_a_an_output_folder_that_holds_an_input_file_is_refused(tmp_path):
    run = write_run(tmp_path / "run")
    album = tmp_path / "album"
    write_image(album / "sub" / "cat.png", seed=3)
    before = snapshot(album)
    code, _, err = run_cli("stylize", str(album / "sub" / "cat.png"), "--checkpoint", str(run), "--out", str(album / "sub"))
    assert code == 2 and "would overwrite the input" in err
    assert snapshot(album) == before


def test_b_colliding_names_get_unique_outputs_and_a_true_count(tmp_path):
    run = write_run(tmp_path / "run")
    src = tmp_path / "in"
    for i, name in enumerate(["a.jpg", "a.png", "a-1.jpg", "A.PNG"]):
        write_image(src / name, seed=i)
    code, out, err = run_cli("stylize", str(src), "--checkpoint", str(run), "--out", str(tmp_path / "out"))
    assert code == 0, err
    written = [Path(line) for line in out.splitlines()]
    assert len(written) == len(set(written)) == 4
    assert sorted(p.name.casefold() for p in (tmp_path / "out").iterdir()) == sorted(p.name.casefold() for p in written)
    assert "stylised 4 image(s)" in err


# ----------------------------------------------------------------------------------------
# C and D: one run per folder
# ----------------------------------------------------------------------------------------


def test_c_a_second_process_cannot_train_into_a_folder_in_use(trained, tmp_path):
    run = _copy(trained, tmp_path)
    holder = hold_run_folder(run)
    try:
        before = snapshot(run)
        code, _, err = run_cli("train", str(run / "spec.yaml"), "--out", str(run), "--resume", "--quiet")
        assert code == 2
        assert f"in use by another gancr process (pid {holder.pid})" in err
        assert snapshot(run) == before  # metrics.jsonl got no duplicate lines
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: the OS released its lock, and the run continues
    code, _, err = run_cli("train", str(run / "spec.yaml"), "--out", str(run), "--resume", "--quiet")
    assert code == 0, err


def test_c_a_forked_child_does_not_keep_the_lock_of_a_killed_process(tmp_path):
    """Data-loader workers are forked: when the trainer is killed, its folder is free at once."""
    code = ("import os, sys, time\nfrom gancr.storage.files import RunLock\nlock = RunLock(sys.argv[1])\npid = os.fork()\n"
            "if pid == 0:\n    time.sleep(60)\n    os._exit(0)\nprint(pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        with pytest.raises(gancr.GancrError, match=f"pid {parent.pid}"):
            RunLock(tmp_path)
        parent.kill()
        parent.wait()
        RunLock(tmp_path).release()  # the child lives on, and the folder is free
    finally:
        parent.kill()
        os.kill(child, signal.SIGKILL)


def test_d_a_new_run_into_a_finished_runs_folder_is_refused(trained, tmp_path):
    run = _copy(trained, tmp_path)
    shutil.rmtree(run / "checkpoints")  # what made the old check pass
    before = snapshot(run)
    code, _, err = run_cli("train", str(run / "spec.yaml"), "--out", str(run), "--quiet")
    assert code == 2
    assert "holds another run" in err and "--resume" in err and "--overwrite" in err
    assert snapshot(run) == before  # generator.safetensors and metrics.jsonl are untouched


def test_d_overwrite_replaces_the_old_run(trained, tmp_path):
    run = _copy(trained, tmp_path)
    (run / "notes.txt").write_text("mine", encoding="utf-8")
    old = read_generator_file(run / "generator.safetensors").step
    code, _, err = run_cli("train", str(run / "spec.yaml"), "--out", str(run), "--overwrite", "--quiet",
                           "--set", "training.stages.1.steps=1")
    assert code == 0, err
    assert read_generator_file(run / "generator.safetensors").step == old - 1
    assert [c for c, _ in RunDir(run).checkpoints()] == [2, 3]  # the old run's step 4 is gone
    assert (run / "notes.txt").read_text(encoding="utf-8") == "mine"  # files that are not the run's stay


def test_d_resume_and_overwrite_together_are_refused(trained, tmp_path):
    code, _, err = run_cli("train", str(trained / "spec.yaml"), "--out", str(tmp_path / "x"), "--resume", "--overwrite")
    assert code == 2 and "give one of them" in err


# ----------------------------------------------------------------------------------------
# E: exports are atomic
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_e_an_export_onto_a_full_disk_keeps_the_previous_file(trained, tmp_path, monkeypatch, fmt):
    out = tmp_path / f"model.{fmt}"
    code, _, err = run_cli("export", "--checkpoint", str(trained), "--format", fmt, "--out", str(out), "--no-check")
    assert code == 0, err
    before = snapshot(out)
    with full_disk(monkeypatch):
        code, _, err = run_cli("export", "--checkpoint", str(trained), "--format", fmt, "--out", str(out))
    assert code == 2
    assert f"cannot write {out}: no space left on the device" in err and "unchanged" in err
    assert "Traceback" not in err
    assert snapshot(out) == before and not temporary_files(tmp_path)


def test_e_a_failed_export_check_keeps_the_previous_file(trained, tmp_path, monkeypatch):
    out = tmp_path / "model.onnx"
    assert run_cli("export", "--checkpoint", str(trained), "--format", "onnx", "--out", str(out))[0] == 0
    before = snapshot(out)
    import gancr.inference.export as export

    def broken(generator, x, got):  # the exported model computes something else
        raise gancr.GancrError("export check: the exported model gave shape (1,), PyTorch (2, 3, 67, 93)")

    monkeypatch.setattr(export, "_compare", broken)
    code, _, err = run_cli("export", "--checkpoint", str(trained), "--format", "onnx", "--out", str(out))
    assert code == 2 and "export check" in err
    assert snapshot(out) == before and not temporary_files(tmp_path)


# ----------------------------------------------------------------------------------------
# F: checksums
# ----------------------------------------------------------------------------------------


def test_f_a_flipped_byte_in_the_newest_checkpoint_is_found_and_resume_falls_back(trained, tmp_path):
    run = _copy(trained, tmp_path)
    (run / "generator.safetensors").unlink()
    newest = RunDir(run).checkpoints()[-1][1]
    flip_tensor_byte(newest)
    with pytest.raises(CheckpointError, match="corrupt: its content does not match the checksum"):
        load_checkpoint(newest)
    code, _, err = run_cli("stylize", str(write_image(tmp_path / "p.png")), "--checkpoint", str(newest),
                           "--out", str(tmp_path / "out"))
    assert code == 2 and "corrupt" in err and str(newest) in err
    with pytest.warns(UserWarning, match=f"skipping checkpoint {newest.name}: .*corrupt"):
        trainer = Trainer(run / "spec.yaml", run, resume=True, quiet=True)
    assert trainer.step == 2  # the checkpoint before


def test_f_a_flipped_byte_in_the_generator_file_is_found(trained, tmp_path):
    run = _copy(trained, tmp_path)
    flip_tensor_byte(run / "generator.safetensors", offset=11)
    code, _, err = run_cli("stylize", str(write_image(tmp_path / "p.png")), "--checkpoint", str(run),
                           "--out", str(tmp_path / "out"))
    assert code == 2 and "generator.safetensors is corrupt" in err
    assert not (tmp_path / "out").exists()


def test_f_files_without_a_checksum_still_load(trained, tmp_path):
    """Runs written before checksums existed (gancr 0.1) load as before."""
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    run = _copy(trained, tmp_path)
    path = run / "generator.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "checksum"}
    save_file(load_file(str(path)), str(path), metadata=meta)
    ckpt = RunDir(run).checkpoints()[-1][1]
    state = torch.load(ckpt, weights_only=True)
    del state["checksum"]
    torch.save(state, ckpt)
    gancr.load_generator(path)
    assert load_checkpoint(ckpt).step == 4


# ----------------------------------------------------------------------------------------
# G: non-finite numbers
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", [
    "training.optimizer.lr.generator=.inf",
    "training.stages.1.w_g=.inf",
    "losses.content.0.weight=.nan",
    "training.ema.decay=-.inf",
])
def test_g_a_non_finite_number_in_a_spec_is_refused(trained, tmp_path, setting):
    path = setting.split("=")[0]
    for command in ("validate", "train"):
        args = [command, str(trained / "spec.yaml"), "--set", setting]
        if command == "train":
            args += ["--out", str(tmp_path / "run")]
        code, _, err = run_cli(*args)
        assert code == 2 and f"{path}: must be a finite number" in err, err
    assert not (tmp_path / "run").exists()


def test_g_a_non_finite_number_in_a_yaml_file_is_refused(image_dirs, tmp_path):
    spec = tiny_spec(*image_dirs)
    spec["training"]["optimizer"] = {"lr": {"generator": float("inf")}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    code, _, err = run_cli("train", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run"))
    assert code == 2 and "training.optimizer.lr.generator: must be a finite number, got inf" in err


def _scaled(weights, change):
    """``weights`` with ``change`` applied to every floating-point tensor of every network."""
    def apply(state):
        return {k: (change(v) if v.is_floating_point() else v) for k, v in state.items()} if state else state

    return dataclasses.replace(weights, generator=apply(weights.generator), ema=apply(weights.ema),
                               content_net=apply(weights.content_net))


def test_g_a_generator_with_nan_weights_is_neither_written_nor_loaded(tmp_path):
    run = write_run(tmp_path / "run")
    weights = read_generator_file(run / "generator.safetensors")
    bad = _scaled(weights, lambda v: torch.full_like(v, float("nan")))
    with pytest.raises(CheckpointError, match="refusing to write .* hold NaN or infinite values"):
        save_generator(tmp_path / "bad.safetensors", bad)
    assert not (tmp_path / "bad.safetensors").exists()
    # one written by other means (safetensors directly) is refused on load, by every command
    from safetensors.torch import save_file

    save_file(bad.to_safetensors()[0], str(tmp_path / "bad.safetensors"),
              metadata={"format": "gancr.generator", "spec": json.dumps(weights.spec)})
    photo = write_image(tmp_path / "p.png")
    code, _, err = run_cli("stylize", str(photo), "--checkpoint", str(tmp_path / "bad.safetensors"), "--out", str(tmp_path / "o"))
    assert code == 2 and "hold NaN or infinite values" in err and not (tmp_path / "o").exists()
    code, _, err = run_cli("export", "--checkpoint", str(tmp_path / "bad.safetensors"), "--format", "onnx",
                           "--out", str(tmp_path / "g.onnx"))
    assert code == 2 and "NaN" in err and not (tmp_path / "g.onnx").exists()


def test_g_the_parity_check_fails_on_nan(tmp_path):
    """Finite weights so large that the output overflows: the export check fails instead of passing on NaN."""
    run = write_run(tmp_path / "run")
    weights = read_generator_file(run / "generator.safetensors")
    save_generator(run / "generator.safetensors", _scaled(weights, lambda v: v * 1e30))
    for fmt in ("onnx", "torchscript", "safetensors"):
        out = tmp_path / f"g.{fmt}"
        code, _, err = run_cli("export", "--checkpoint", str(run), "--format", fmt, "--out", str(out))
        assert code == 2 and "NaN or infinite" in err and "nothing was written" in err, (fmt, err)
        assert not out.exists() and not temporary_files(tmp_path)
    code, _, err = run_cli("stylize", str(write_image(tmp_path / "p.png")), "--checkpoint", str(run), "--out", str(tmp_path / "o"))
    assert code == 2 and "outputs NaN" in err
