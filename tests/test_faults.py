"""Faults that end in a clear message and a kept state, never a traceback or a lost run (issue 11, 1-11),
beyond the rows of the fault corpus: a finished run with a bad image is a success; a full disk
and a read-only place (a write that fails through the same code path, and a real small file
system where the machine allows mounting one); photos too big for the memory; strict timm
weights; plugins that exit or raise BaseException; leftovers of killed writes.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

import gancr
from gancr.errors import BuildError, ResourceError
from gancr.storage import RunDir, load_checkpoint
from gancr.training import Trainer

from faultkit import full_disk, small_filesystem, snapshot, temporary_files
from inferencekit import run_cli, smooth_image, write_png, write_run
from trainkit import image_dirs, tiny_spec, write_folder, write_image  # noqa: F401 - image_dirs is a fixture


def _spec_file(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------
# 1, 2: a finished run is a success; unreadable images are skipped with a count
# ----------------------------------------------------------------------------------------


def test_a_run_with_an_unreadable_content_image_finishes_with_status_0(tmp_path, image_dirs):
    content = Path(shutil.copytree(image_dirs[0], tmp_path / "content"))
    (content / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # sorts first: the demo picks it
    spec = _spec_file(tmp_path, tiny_spec(content, image_dirs[1]))
    code, out, err = run_cli("train", str(spec), "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert "broken.jpg" in err and "trained 4 steps" in out
    assert (tmp_path / "run" / "generator.safetensors").is_file()
    assert len(list((tmp_path / "run" / "stylized").glob("*.png"))) == 1  # the readable demo photo
    # resuming the finished run is a success too
    code, out, err = run_cli("train", str(spec), "--out", str(tmp_path / "run"), "--resume")
    assert code == 0, err


# ----------------------------------------------------------------------------------------
# 3: full disks and read-only places
# ----------------------------------------------------------------------------------------


def test_a_full_disk_during_training_names_the_file_and_keeps_the_last_checkpoint(tmp_path, image_dirs, monkeypatch):
    spec = tiny_spec(*image_dirs, training={"checkpoint": {"every": 1, "keep": 5}})
    first = tmp_path / "first"
    Trainer(spec, first, quiet=True, max_steps=1).fit()
    one = RunDir(first).checkpoints()[0][1].stat().st_size
    spec_file = _spec_file(tmp_path, spec)
    with full_disk(monkeypatch, after=int(2.5 * one)):  # room for spec.yaml and two checkpoints, not three
        code, _, err = run_cli("train", str(spec_file), "--out", str(tmp_path / "run"), "--quiet")
    assert code == 2
    assert "cannot write" in err and "step_0000003.pt: no space left on the device" in err
    assert "it needs about" in err and "free there" in err
    assert "The newest complete checkpoint" in err and "step_0000002.pt, is intact" in err and "--resume" in err
    assert "Traceback" not in err
    run = tmp_path / "run"
    assert [s for s, _ in RunDir(run).checkpoints()] == [1, 2]
    assert load_checkpoint(RunDir(run).checkpoint_file(2)).step == 2
    assert not temporary_files(run)
    code, _, err = run_cli("train", str(spec_file), "--out", str(run), "--resume", "--quiet")  # space again
    assert code == 0, err


def test_a_full_disk_during_stylize_and_eval_json_leaves_no_partial_file(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run")
    photo = write_png(tmp_path / "photo.png", smooth_image(40, 56))
    with full_disk(monkeypatch):
        code, _, err = run_cli("stylize", str(photo), "--checkpoint", str(run), "--out", str(tmp_path / "out"))
    assert code == 2 and "photo.png: no space left on the device" in err and "no partial file was left" in err
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
    with full_disk(monkeypatch):
        code, _, err = run_cli("schema", "--out", str(tmp_path / "schema.json"))
    assert code == 2 and "schema.json: no space left" in err and not (tmp_path / "schema.json").exists()


def test_a_real_full_file_system(tmp_path, image_dirs):
    """Training, export and stylize onto a 300 kB tmpfs: messages, never a crash (TorchScript used to abort)."""
    spec = _spec_file(tmp_path, tiny_spec(*image_dirs, training={"checkpoint": {"every": 1, "keep": 5}}))
    run = write_run(tmp_path / "run")
    with small_filesystem(tmp_path / "small", "300k") as small:
        (small / "filler").write_bytes(b"\0" * 150_000)
        code, _, err = run_cli("train", str(spec), "--out", str(small / "train"), "--quiet")
        assert code == 2 and "no space left on the device" in err, err
        assert all(load_checkpoint(p).step == s for s, p in RunDir(small / "train").checkpoints())
        _fill_up(small)
        for fmt in ("torchscript", "onnx", "safetensors"):
            code, _, err = run_cli("export", "--checkpoint", str(run), "--format", fmt, "--out", str(small / f"g.{fmt}"))
            assert code == 2 and "no space left on the device" in err, (fmt, err)
            assert not (small / f"g.{fmt}").exists()
        assert not temporary_files(small)


def _fill_up(folder: Path) -> None:
    """Take the space that is left."""
    try:
        with open(folder / "the-rest", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass


def test_a_real_read_only_place(tmp_path):
    run = write_run(tmp_path / "run")
    photo = write_png(tmp_path / "photo.png", smooth_image(40, 56))
    with small_filesystem(tmp_path / "ro", "100k", read_only=True) as ro:
        for argv in (["stylize", str(photo), "--checkpoint", str(run), "--out", str(ro / "out")],
                     ["export", "--checkpoint", str(run), "--format", "torchscript", "--out", str(ro / "g.pt")],
                     ["schema", "--out", str(ro / "s.json")],
                     ["train", str(tmp_path / "x.yaml"), "--out", str(ro / "run")]):
            code, _, err = run_cli(*argv)
            assert code == 2 and "is not writable (the file system is read-only)" in err, (argv, err)


# ----------------------------------------------------------------------------------------
# 4, 5: memory
# ----------------------------------------------------------------------------------------


def test_a_photo_too_big_for_the_memory_is_stylised_in_tiles(tmp_path, monkeypatch):
    stylize_module = sys.modules["gancr.inference.stylize"]  # the package's `stylize` is the function

    run = write_run(tmp_path / "run")
    generator = gancr.load_generator(run)
    x = smooth_image(300, 420)[0]
    untiled = gancr.inference.stylize_tensor(generator, x)
    monkeypatch.setattr(stylize_module, "available_memory", lambda device=None: 20_000_000)
    with pytest.warns(UserWarning, match=r"a 900x700 image needs about .* of memory untiled and 20.0 MB is free: "
                                         r"stylising it in tiles of 512 px"):
        tiled = gancr.inference.stylize_tensor(generator, smooth_image(700, 900)[0])
    assert tiled.shape == (3, 700, 900)
    # small enough for one tile: the same as untiled
    monkeypatch.setattr(stylize_module, "available_memory", lambda device=None: 4_000_000)
    with pytest.warns(UserWarning, match="tiles of 512 px"):
        again = gancr.inference.stylize_tensor(generator, x)
    assert torch.allclose(again, untiled, atol=1e-5)
    monkeypatch.setattr(stylize_module, "available_memory", lambda device=None: 1_000_000)
    with pytest.raises(ResourceError, match="needs .* for its input and output alone"):
        gancr.inference.stylize_tensor(generator, x)


def test_an_allocation_that_fails_untiled_falls_back_to_tiles(tmp_path):
    run = write_run(tmp_path / "run")
    generator = gancr.load_generator(run)
    real = generator.forward

    def forward(x):
        if x.shape[-1] > 200:  # the whole photo; tiles are smaller
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 5800000000 bytes")
        return real(x)

    generator.forward = forward
    with pytest.warns(UserWarning, match="did not fit in memory untiled: stylising it in tiles of 130 px"):
        y = gancr.inference.stylize_tensor(generator, smooth_image(150, 260)[0], tile=None)
    assert y.shape == (3, 150, 260)


def test_many_tiles_estimate_the_statistics_with_a_note_and_show_progress(tmp_path):
    from gancr.inference.tiling import EXACT_STATS_LIMIT, tiled_forward

    generator = gancr.load_generator(write_run(tmp_path / "run"))
    x = smooth_image(200, 200)
    calls = []
    with pytest.warns(UserWarning, match=f"statistics are estimated from {EXACT_STATS_LIMIT} of them"):
        tiled_forward(generator, x, 48, 16, progress=lambda phase, done, total: calls.append((phase, done, total)))
    phases = {phase for phase, _, _ in calls}
    assert phases == {"statistics", "tiles"} and calls[-1][1] == calls[-1][2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact, as asked: no note
        tiled_forward(generator, x, 48, 16, stats_tiles=0)


def test_a_training_step_too_big_for_the_memory_is_refused_before_it_starts(tmp_path, image_dirs, monkeypatch):
    import gancr.devices as devices_module

    spec = tiny_spec(*image_dirs)
    monkeypatch.setattr(devices_module, "available_memory", lambda device=None: 1_000_000)
    with pytest.raises(ResourceError, match="needs about .* of memory for its activations, and 1.0 MB is free; "
                                            "lower training.batch_size or training.image_size"):
        Trainer(spec, tmp_path / "run", quiet=True).fit()
    assert not RunDir(tmp_path / "run").checkpoints()


# ----------------------------------------------------------------------------------------
# 8: timm weights load strictly
# ----------------------------------------------------------------------------------------


def test_timm_weights_of_another_network_are_refused_naming_the_keys(tmp_path):
    import timm
    import torchvision

    torch.save(torchvision.models.vgg11().state_dict(), tmp_path / "vgg.pth")
    with pytest.raises(BuildError, match=r"do not belong to resnet18 \(missing conv1.weight.*; unexpected features.0.weight"):
        gancr.build_component("encoder", {"name": "timm", "model_name": "resnet18", "weights": str(tmp_path / "vgg.pth")})
    right = timm.create_model("resnet18")
    torch.save({k: v for k, v in right.state_dict().items() if not k.startswith("fc.")}, tmp_path / "r18.pth")
    encoder = gancr.build_component("encoder", {"name": "timm", "model_name": "resnet18", "weights": str(tmp_path / "r18.pth")})
    assert encoder.pretrained and torch.equal(encoder.model.conv1.weight, right.conv1.weight)


# ----------------------------------------------------------------------------------------
# 10: plugins that end the process
# ----------------------------------------------------------------------------------------


def test_plugins_that_exit_or_take_a_reserved_name_are_left_out_and_named(entry_point_plugins, capsys):
    entry_point_plugins.add("exits", "import sys\nsys.exit(3)\n")
    entry_point_plugins.add("builtin", "import gancr\n", module="impostor")
    entry_point_plugins.activate()
    code, out, err = run_cli("components", "encoder")
    assert code == 0 and "vgg19" in out
    assert "'exits'" in err and "SystemExit: 3" in err
    assert "'builtin=impostor'" in err and "reserved for gancr's own plugins" in err


def test_a_hook_raising_baseexception_is_named_and_training_keeps_its_state(tmp_path, image_dirs):
    class Exits:
        @gancr.hookimpl
        def gancr_on_step_end(self, trainer, step, metrics):
            raise SystemExit(3)

    with gancr.registered_plugin(Exits(), "exits-in-a-hook"), pytest.warns(UserWarning, match="'exits-in-a-hook' raised in "
                                                                                           "gancr_on_step_end .*SystemExit"):
        result = Trainer(tiny_spec(*image_dirs), tmp_path / "run", quiet=True).fit()
    assert result.status == "finished" and (tmp_path / "run" / "generator.safetensors").is_file()


# ----------------------------------------------------------------------------------------
# 11: leftovers of killed writes
# ----------------------------------------------------------------------------------------


def test_temporary_files_of_killed_writes_are_removed_at_the_next_run(tmp_path, image_dirs):
    spec = tiny_spec(*image_dirs, training={"checkpoint": {"every": 1, "keep": 2}})
    run = tmp_path / "run"
    Trainer(spec, run, quiet=True, max_steps=2).fit()
    leftovers = [run / "checkpoints" / ".step_0000003.pt.k1ll3d.tmp", run / ".spec.yaml.x0x0.tmp",
                 run / "samples" / ".step_0000003.png.abc.tmp"]
    for p in leftovers:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half a file")
    keep = run / "notes.tmp"  # not a temporary file of gancr's: stays
    keep.write_text("mine", encoding="utf-8")
    Trainer(spec, run, quiet=True, resume=True).fit()
    assert not any(p.exists() for p in leftovers) and keep.exists()
