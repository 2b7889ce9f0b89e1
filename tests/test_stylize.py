"""``gancr stylize`` and ``gancr.stylize`` on a trained run: sizes, transparency, folders,
EMA or raw weights, every kind of weights file, and checkpoints that would run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gancr
from gancr.cli import main
from gancr.errors import CheckpointError
from gancr.inference import load_generator, stylize, stylize_tensor
from gancr.training import Trainer
from gancr.storage import load_checkpoint

from trainkit import image_dirs, tiny_spec, write_image  # noqa: F401 - image_dirs is a fixture


@pytest.fixture(scope="module")
def run(image_dirs, tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints at steps 2 and 4, generator.safetensors, EMA 0.5."""
    out = tmp_path_factory.mktemp("stylize") / "run"
    spec = tiny_spec(*image_dirs, training={"ema": {"decay": 0.5}, "checkpoint": {"every": 2, "keep": 5}})
    result = Trainer(spec, out, quiet=True).fit()
    assert result.status == "finished" and result.generator is not None
    return out


def _stylize_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["stylize", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _array(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def test_rgba_333x217_keeps_its_size_and_alpha(run, tmp_path, capsys):
    src = write_image(tmp_path / "in" / "wide.png", h=217, w=333, seed=5, mode="RGBA")
    code, out, err = _stylize_cli(capsys, str(src), "--checkpoint", str(run), "--out", str(tmp_path / "out"))
    assert code == 0, err
    dst = tmp_path / "out" / "wide.png"
    assert out.splitlines() == [str(dst)] and "stylised 1 image(s)" in err
    with Image.open(dst) as img:
        assert img.size == (333, 217) and img.mode == "RGBA"
    produced, given = _array(dst), _array(src)
    np.testing.assert_array_equal(produced[..., 3], given[..., 3])  # the transparency is kept
    assert not np.array_equal(produced[..., :3], given[..., :3])  # and the colours stylised


def test_a_folder_keeps_its_layout(run, tmp_path, capsys):
    src = tmp_path / "album"
    sizes = {"a.png": (31, 45), "sub/b.jpg": (64, 48), "sub/deeper/c.bmp": (17, 90)}
    for name, (h, w) in sizes.items():
        write_image(src / name, h=h, w=w, seed=len(name))
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    code, printed, err = _stylize_cli(capsys, str(src), "--checkpoint", str(run), "--out", str(out))
    assert code == 0, err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    for name, (h, w) in sizes.items():
        with Image.open(out / Path(name).with_suffix(".png")) as img:
            assert img.size == (w, h)

    # the same through a symbolic link to the folder
    link = tmp_path / "link"
    link.symlink_to(src, target_is_directory=True)
    code, _, err = _stylize_cli(capsys, str(link), "--checkpoint", str(run), "--out", str(tmp_path / "via-link"))
    assert code == 0, err
    assert sorted(p.relative_to(tmp_path / "via-link").as_posix() for p in (tmp_path / "via-link").rglob("*.png")) == written


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 2, 3), (3, 5, 7), (3, 33, 65), (2, 3, 17, 9), (1, 3, 217, 333)])
def test_any_size_works(run, shape):
    generator = load_generator(run)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    y = stylize_tensor(generator, x)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_stylize_writes_files_and_returns_them_and_stylize_tensor_takes_tensors(run, tmp_path):
    # one return type each: stylize -> the files it wrote (Stylized), stylize_tensor -> a tensor
    src = write_image(tmp_path / "in" / "photo.png", h=40, w=52, seed=3)
    written = gancr.stylize([src.parent], checkpoint=run, out_dir=tmp_path / "out", alpha=0.5, device="cpu")
    assert written == [tmp_path / "out" / "photo.png"] and written.skipped == []
    from gancr.data import load_image

    expected = gancr.stylize_tensor(load_generator(run, device="cpu"), load_image(src), alpha=0.5)
    assert np.abs(_array(written[0]).astype(float) - (expected.permute(1, 2, 0).numpy() * 255)).max() <= 0.5 + 1e-3
    with pytest.raises(TypeError, match="stylize_tensor"):
        gancr.stylize(torch.rand(3, 8, 8), checkpoint=run, out_dir=tmp_path / "never")


def test_ema_and_raw_weights_differ(run, tmp_path, capsys):
    src = write_image(tmp_path / "photo.png", h=40, w=52, seed=3)
    for flag in ("--ema", "--no-ema"):
        code, _, err = _stylize_cli(capsys, str(src), "--checkpoint", str(run), "--out", str(tmp_path / flag), flag)
        assert code == 0, err
    ema, raw = _array(tmp_path / "--ema" / "photo.png"), _array(tmp_path / "--no-ema" / "photo.png")
    assert ema.shape == raw.shape == (40, 52, 3)
    assert not np.array_equal(ema, raw)
    assert load_generator(run).uses_ema and not load_generator(run, ema=False).uses_ema


def test_run_dir_generator_file_and_checkpoint_agree(run):
    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(1))
    from_dir = stylize_tensor(load_generator(run), x)
    from_file = stylize_tensor(load_generator(run / "generator.safetensors"), x)
    final = stylize_tensor(load_generator(run / "checkpoints" / "step_0000004.pt"), x)
    earlier = stylize_tensor(load_generator(run / "checkpoints" / "step_0000002.pt"), x)
    assert torch.equal(from_dir, from_file) and torch.equal(from_dir, final)
    assert not torch.equal(final, earlier)
    for ema in (True, False):
        a = load_generator(run / "generator.safetensors", ema=ema)
        b = load_generator(run / "checkpoints" / "step_0000004.pt", ema=ema)
        assert a.weights_path.suffix == ".safetensors" and b.weights_path.suffix == ".pt"
        assert torch.equal(stylize_tensor(a, x), stylize_tensor(b, x))


def test_a_run_dir_without_generator_file_uses_its_newest_checkpoint(run, tmp_path):
    partial = tmp_path / "partial"
    (partial / "checkpoints").mkdir(parents=True)
    for step in (2, 4):
        name = f"step_{step:07d}.pt"
        (partial / "checkpoints" / name).write_bytes((run / "checkpoints" / name).read_bytes())
    assert load_generator(partial).weights_path.name == "step_0000004.pt"
    with pytest.raises(CheckpointError, match="neither generator.safetensors nor a checkpoint"):
        load_generator(tmp_path)


class _Payload:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


def test_a_checkpoint_that_would_run_code_is_refused(run, tmp_path, capsys):
    # the payload works: plain pickle would run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.read_text() == "code ran"

    marker = tmp_path / "marker"
    evil_run = tmp_path / "evil-run"
    (evil_run / "checkpoints").mkdir(parents=True)
    zipped = evil_run / "checkpoints" / "step_0000009.pt"
    torch.save({"version": 1, "step": 9, "models": _Payload(marker), "spec": {}}, zipped)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"models": _Payload(marker), "step": 1}, protocol=2))

    for path in (zipped, legacy):
        with pytest.raises(CheckpointError, match="refuses to unpickle"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            stylize([str(run / "samples")], checkpoint=path, out_dir=tmp_path / "o")
        code, _, err = _stylize_cli(capsys, str(run / "samples"), "--checkpoint", str(path), "--out", str(tmp_path / "o"))
        assert code == 2 and "refuses to unpickle" in err and "Traceback" not in err
    # in a run directory it is skipped (with a warning), never loaded
    with pytest.warns(UserWarning, match="skipping checkpoint step_0000009.pt"):
        with pytest.raises(CheckpointError, match="neither generator.safetensors nor a checkpoint"):
            load_generator(evil_run)
    with pytest.warns(UserWarning, match="skipping checkpoint"):
        with pytest.raises(gancr.CheckpointError, match="no complete checkpoint"):
            Trainer(tiny_spec(tmp_path, tmp_path), evil_run, resume=True, quiet=True)
    assert not marker.exists()


def test_every_entry_point_defaults_to_the_auto_device():
    """One device rule (issue 20): whatever runs a model takes device="auto" unless told otherwise."""
    import inspect

    from gancr.bench.quality import bench_quality
    from gancr.bench.speed import bench_speed
    from gancr.cli import build_parser
    from gancr.evaluation import evaluate
    from gancr.inference import Run, load_content_net
    from gancr.spec import load_spec

    for fn in (gancr.stylize, load_generator, load_content_net, evaluate, Run.generator, Run.content_net,
               bench_speed, bench_quality):
        assert inspect.signature(fn).parameters["device"].default == "auto", fn.__qualname__
    assert load_spec({}).training.device == "auto"
    parser = build_parser()
    for command in (["stylize", "x", "--checkpoint", "r", "--out", "o"], ["eval", "--checkpoint", "r", "--content", "c",
                    "--style", "s"], ["bench", "speed", "--spec", "s"], ["bench", "quality"]):
        assert parser.parse_args(command).device == "auto", command
