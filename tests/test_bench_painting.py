"""``gancr bench painting``: a recipe beside identity and Gatys, scored alike (tiny sizes; the real
figures come from the benchmark itself, docs/gallery.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from gancr.bench.painting import SIZE, GatysSettings, PaintingScorer, gatys
from gancr.cli import main
from gancr.data import save_image
from gancr.storage.hed import hed_missing

DOCS = Path(__file__).resolve().parent.parent / "docs"

pytestmark = pytest.mark.skipif(hed_missing() is not None, reason=str(hed_missing()))

SPEC = """\
model:
  generator:
    encoder: {name: vgg16, weights: hed, layer: relu2_1, freeze: true}
    neck: {name: identity}
    decoder: {name: unet, widths: [8], skip_norm: true}
  content_net: {share_encoder: true}
  discriminator: {name: patchgan, layers: 1, width: 4}
losses:
  content: [{name: content_net, distance: mse, normalize: true}]
  style: [{name: gram, encoder: {name: vgg16, weights: hed, layer: relu2_1, freeze: true}, normalize: true,
           per_image: true, target: images}]
training:
  stages: [{name: separate, steps: 1}, {name: joint, steps: 2}]
  batch_size: 2
  image_size: 32
"""


def _images(folder, n, seed):
    g = torch.Generator().manual_seed(seed)
    folder.mkdir()
    for i in range(n):
        save_image(torch.rand(3, 40, 48, generator=g), folder / f"{i}.png")
    return folder


def test_gatys_moves_towards_the_style_and_scores_say_so():
    scorer = PaintingScorer()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 40, generator=g) * 0.2 + 0.4  # a grey, low-contrast photograph
    painting = torch.rand(1, 3, 40, 32, generator=g)  # a noisy, colourful painting
    grams = scorer.style_grams(painting)
    y = gatys(scorer, x, grams, GatysSettings(steps=20, lr=0.05))
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    before, after = scorer.score(x, x, grams), scorer.score(x, y, grams)
    assert before["style_fraction"] == pytest.approx(1.0) and before["ssim"] == pytest.approx(1.0)
    assert after["style_fraction"] < 0.9 * before["style_fraction"]  # closer to the painting's statistics
    assert after["ssim"] < 1.0
    with pytest.raises(Exception, match="content layer is relu4_1"):
        gatys(scorer, x, grams, GatysSettings(steps=1, content_layer="relu3_1"))


def test_the_benchmark_trains_scores_three_methods_and_writes_the_grid(tmp_path, capsys):
    photos, holdout = _images(tmp_path / "photos", 3, 0), _images(tmp_path / "holdout", 1, 1)
    painting = tmp_path / "painting.png"
    save_image(torch.rand(3, 36, 30, generator=torch.Generator().manual_seed(2)), painting)
    (tmp_path / "spec.yaml").write_text(SPEC)
    code = main(["bench", "painting", "--painting", str(painting), "--photos", str(photos), "--holdout", str(holdout),
                 "--spec", str(tmp_path / "spec.yaml"), "--gatys-steps", "2", "--out", str(tmp_path / "out"),
                 "--json", str(tmp_path / "out" / "result.json"), "--markdown", str(tmp_path / "r.md")])
    assert code == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [(r["photo"], r["method"]) for r in result["rows"]] == [("0", "identity"), ("0", "recipe"), ("0", "gatys")]
    identity = result["rows"][0]
    assert identity["style_fraction"] == pytest.approx(1.0) and identity["ssim"] == pytest.approx(1.0)
    assert identity["hed_f1"] == 1.0 and identity["canny_f1"] == 1.0
    assert result["training"]["painting"] > 0 and result["gatys"]["steps"] == 2
    assert set(result["summary"]["goal"]) >= {"fraction_ratio", "ssim_gap", "noisier_than_painting", "met"}
    grid = tmp_path / "out" / "painting.png"
    from gancr.data import load_image

    assert load_image(grid).shape == (3, 2 * SIZE, 3 * SIZE)  # the painting's row, one photograph's row
    for method in ("recipe", "gatys"):  # each output at the scored size (the held-out image is 40 x 48)
        assert load_image(tmp_path / "out" / "outputs" / "painting" / f"0_{method}.png").shape == (3, 213, SIZE)
    assert "| painting | recipe |" in (tmp_path / "r.md").read_text()
    assert "Recipe / Gatys style fraction" in capsys.readouterr().out
    # docs/make_gallery.py makes docs/gallery.md's figures and table from that folder
    done = subprocess.run([sys.executable, str(DOCS / "make_gallery.py"), "--bench", str(tmp_path / "out"),
                           "--photos", str(holdout), "--paintings", str(painting), "--out", str(tmp_path / "gallery")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "gallery" / "gallery_painting.jpg") as sheet:
        assert sheet.size == (3 * 224 + 2 * 4, 2 * 224 + 4)  # the painting's row, then input | recipe | Gatys
    with Image.open(tmp_path / "gallery" / "gallery_strip.jpg") as strip:
        assert strip.size == (3 * 160 + 2 * 4, 160)  # painting | photograph | recipe
    assert "| painting | recipe |" in done.stdout and "| **all** | gatys |" in done.stdout


def test_gatys_outputs_of_an_earlier_run_are_reused_only_when_made_alike(tmp_path, monkeypatch):
    import gancr.bench.painting as bench

    photos, holdout = _images(tmp_path / "photos", 3, 0), _images(tmp_path / "holdout", 2, 1)
    painting = tmp_path / "painting.png"
    save_image(torch.rand(3, 36, 30, generator=torch.Generator().manual_seed(2)), painting)
    (tmp_path / "spec.yaml").write_text(SPEC)
    common = ["bench", "painting", "--painting", str(painting), "--photos", str(photos), "--holdout", str(holdout),
              "--spec", str(tmp_path / "spec.yaml"), "--gatys-steps", "2"]
    assert main([*common, "--out", str(tmp_path / "first"), "--json", str(tmp_path / "first.json")]) == 0
    first = json.loads((tmp_path / "first.json").read_text())
    record = json.loads((tmp_path / "first" / "outputs" / "painting" / "0_gatys.json").read_text())
    assert record["gatys"]["steps"] == 2 and record["size"] == SIZE and len(record["photo_sha256"]) == 64

    calls = []
    real_gatys = bench.gatys
    monkeypatch.setattr(bench, "gatys", lambda *a, **k: calls.append(1) or real_gatys(*a, **k))
    run = ["--run", str(tmp_path / "first" / "run_painting")]
    assert main([*common, *run, "--gatys-from", str(tmp_path / "first"), "--out", str(tmp_path / "second"),
                 "--json", str(tmp_path / "second.json")]) == 0
    assert calls == []  # both photographs' outputs were reused
    second = json.loads((tmp_path / "second.json").read_text())
    pairs = [(a, b) for a, b in zip(first["rows"], second["rows"]) if a["method"] == "gatys"]
    assert len(pairs) == 2
    for a, b in pairs:  # the same output, read back from its 8-bit PNG
        assert b["seconds"] == a["seconds"] and b["style_fraction"] == pytest.approx(a["style_fraction"], abs=0.02)
    assert (tmp_path / "second" / "outputs" / "painting" / "1_gatys.json").exists()  # and recorded again

    # other settings, or a photograph changed since: optimised again
    save_image(torch.rand(3, 40, 48), holdout / "1.png")
    assert main([*common[:-1], "3", *run, "--gatys-from", str(tmp_path / "first"), "--out", str(tmp_path / "third")]) == 0
    assert len(calls) == 2
    assert main([*common, *run, "--gatys-from", str(tmp_path / "first"), "--out", str(tmp_path / "fourth")]) == 0
    assert len(calls) == 3  # photograph 1 only
    # a record without its image, or an image without its record: optimised again, nothing lost
    (tmp_path / "first" / "outputs" / "painting" / "0_gatys.png").unlink()
    (tmp_path / "fourth" / "outputs" / "painting" / "1_gatys.json").write_text("{not json")
    assert main([*common, *run, "--gatys-from", str(tmp_path / "first"), "--out", str(tmp_path / "fifth")]) == 0
    assert main([*common, *run, "--gatys-from", str(tmp_path / "fourth"), "--out", str(tmp_path / "sixth")]) == 0
    assert len(calls) == 3 + 2 + 1
