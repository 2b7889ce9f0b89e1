"""A run written by gancr 0.1, before the package was restructured, still loads, stylises and exports.

``tests/data/run_0_1`` was trained for two steps by commit 1e3f7cf (a tiny spec, its
``generator.safetensors`` and last checkpoint kept); ``run_0_1_expected.safetensors`` holds what
that version's ``stylize`` made of a fixed input from each file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gancr.cli import main
from gancr.data import save_image
from gancr.inference import load_generator, stylize_tensor

RUN = Path(__file__).parent / "data" / "run_0_1"
CHECKPOINT = RUN / "checkpoints" / "step_0000002.pt"


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(Path(__file__).parent / "data" / "run_0_1_expected.safetensors"))


def stylize(x: torch.Tensor, *, checkpoint: Path, ema: bool = True, **options) -> torch.Tensor:
    return stylize_tensor(load_generator(checkpoint, ema=ema), x, **options)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) < 1e-5


def test_its_generator_file_stylises_as_it_did(expected):
    x = expected["input"]
    assert _close(stylize(x, checkpoint=RUN), expected["run"])
    # alpha changed meaning in 0.2 (it blends with the input, not the content net): the old run
    # gives the new blend of its unchanged stylisation
    assert _close(stylize(x, checkpoint=RUN, alpha=0.5), torch.lerp(x, expected["run"], 0.5))


def test_its_checkpoint_stylises_as_it_did(expected, tmp_path):
    x = expected["input"]
    assert _close(stylize(x, checkpoint=CHECKPOINT), expected["checkpoint"])
    assert _close(stylize(x, checkpoint=CHECKPOINT, ema=False), expected["checkpoint_no_ema"])
    run = tmp_path / "unfinished"  # a run directory with a checkpoint and no generator file
    shutil.copytree(RUN / "checkpoints", run / "checkpoints")
    assert _close(stylize(x, checkpoint=run), expected["checkpoint"])


def test_gancr_stylize_and_export_read_it(expected, tmp_path, capsys):
    photo = save_image(expected["input"][0], tmp_path / "in" / "photo.png")
    assert main(["stylize", "--checkpoint", str(RUN), str(photo), "--out", str(tmp_path / "out"), "--alpha", "0.5"]) == 0
    assert (tmp_path / "out" / "photo.png").is_file()
    for source in (RUN, CHECKPOINT):
        out = tmp_path / f"{source.stem}.safetensors"
        assert main(["export", "--checkpoint", str(source), "--format", "safetensors", "--out", str(out)]) == 0
        y = stylize(expected["input"], checkpoint=out)
        assert _close(y, expected["checkpoint"] if source == CHECKPOINT else expected["run"])
    capsys.readouterr()
