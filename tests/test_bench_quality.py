"""``gancr bench quality``: both specs trained the same way, scored against the true cartoons."""

from __future__ import annotations

import argparse
import json

import pytest

from gancr import bench
from gancr.bench.quality import _scale_stages, prepare_spec
from gancr.cli import build_parser, main
from gancr.spec import load_spec


def test_stages_are_scaled_to_the_steps():
    stages = [{"name": "separate", "steps": 60}, {"name": "joint", "steps": 540, "w_c": 2.0}]
    assert [s["steps"] for s in _scale_stages(stages, 300)] == [30, 270]
    assert [s["steps"] for s in _scale_stages(stages, 2)] == [1, 1]
    assert [s["steps"] for s in _scale_stages(stages, 7)] == [1, 6]
    assert _scale_stages(stages, 10)[1]["w_c"] == 2.0
    assert sum(s["steps"] for s in _scale_stages([{"steps": 1}, {"steps": 1}, {"steps": 98}], 5)) == 5


def test_specs_get_the_same_settings_and_the_baseline_is_shrunk():
    gancr_spec, gancr_changes = prepare_spec("examples/quickstart.yaml", steps=100, size=48, batch_size=2)
    base, base_changes = prepare_spec("examples/cyclegan_like.yaml", steps=100, size=48, batch_size=2)
    for spec in (gancr_spec, base):
        t = spec["training"]
        assert sum(s["steps"] for s in t["stages"]) == 100
        assert (t["image_size"], t["batch_size"], t["seed"]) == (48, 2, 0)
    assert gancr_spec["data"] == base["data"]
    # crops at the evaluation's scale: 15-25 % of a 2.5 x size image; the quickstart's own data at 64 px
    assert (gancr_spec["data"]["load_size"], gancr_spec["data"]["crop_scale"]) == (120, [0.15, 0.25])
    own = load_spec("examples/quickstart.yaml").data
    at_64, _ = prepare_spec("examples/quickstart.yaml", steps=100, size=64)
    assert (at_64["data"]["load_size"], tuple(at_64["data"]["crop_scale"])) == (own.load_size, tuple(own.crop_scale))
    # the ResNet-9 baseline is divided by 4 to the quickstart's width; depth is kept
    assert base["model"]["generator"]["encoder"]["widths"] == [16, 32, 64]
    assert base["model"]["generator"]["neck"]["blocks"] == 9
    assert base["model"]["discriminator"]["width"] == 16
    assert any("[64, 128, 256] -> [16, 32, 64]" in c for c in base_changes)
    assert gancr_spec["model"]["generator"]["encoder"]["widths"] == [16, 32]  # already narrow: kept
    assert not any("widths" in c for c in gancr_changes)
    kept, _ = prepare_spec("examples/cyclegan_like.yaml", steps=10, max_width=0)
    assert kept["model"]["generator"]["encoder"]["widths"] == [64, 128, 256]


def test_bench_without_a_benchmark_prints_its_help(capsys):
    assert main(["bench"]) == 2
    assert "quality" in capsys.readouterr().out


def test_a_benchmark_is_one_entry(monkeypatch, capsys):
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--n", type=int, default=1)

    def run(args: argparse.Namespace) -> int:
        print(f"toy n={args.n}")
        return 0

    monkeypatch.setattr(bench, "BENCHMARKS", [*bench.BENCHMARKS, ("toy", "a toy benchmark", add, run)])
    assert main(["bench", "toy", "--n", "3"]) == 0
    assert capsys.readouterr().out.strip() == "toy n=3"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "quality", "--nope"])


def test_bench_quality_tiny_gives_identity_and_both_rows(tmp_path, capsys):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    code = main(["bench", "quality", "--steps", "2", "--size", "32", "--feature-size", "32",
                 "--json", str(out), "--markdown", str(md), "--out", str(tmp_path / "runs")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = printed.out.splitlines()
    assert lines[0].startswith("spec") and "target PSNR ↑" in lines[0] and "Δ PSNR (worst)" in lines[0]
    assert "chroma noise ↓" in lines[0] and "FID ↓" in lines[0]
    assert lines[1].startswith("identity (G(x) = x)")
    assert lines[2].startswith("quickstart ") and lines[3].startswith("cyclegan_like ")
    assert "generator encoder widths [64, 128, 256] -> [16, 32, 64]" in printed.out
    assert "the style set's own value is" in printed.out
    data = json.loads(out.read_text())
    assert data["command"].startswith("gancr bench quality --spec examples/quickstart.yaml examples/cyclegan_like.yaml")
    assert data["settings"]["steps"] == 2 and data["machine"]["cpu_count"] >= 1
    identity = data["identity"]["metrics"]
    assert identity["content/ssim"]["value"] == 1.0 and identity["content/edge_f1"]["value"] == 1.0
    assert abs(identity["content/chroma_noise"]["value"] - 1.0) < 1e-9  # outputs = inputs
    holdout = [p["name"] for p in data["identity"]["per_image"]]
    assert holdout == ["chelsea", "rocket", "grace_hopper", "camera"]
    quick, base = data["runs"]
    assert (quick["role"], base["role"]) == ("gancr", "baseline")
    for run in (quick, base):
        assert run["steps"] == 2
        m = run["eval"]["metrics"]
        for key in ("reference/psnr", "reference/ssim", "reference/edge_f1", "content/ssim", "style/kid",
                    "content/chroma_noise"):
            assert m[key]["value"] is not None, (run["name"], key)
        assert run["eval"]["reference"]["pairs"] == 4
        for key in ("reference/psnr", "reference/ssim", "reference/edge_f1"):
            diff = run["vs_identity"][key]
            assert diff["mean"] == pytest.approx(m[key]["value"] - identity[key]["value"])
            assert set(diff["per_image"]) == set(holdout)
            assert diff["worst"] == min(diff["per_image"].values())
        assert (tmp_path / "runs" / run["name"] / "metrics.jsonl").is_file()
    assert quick["eval"]["metrics"]["content/content_net_distance"]["value"] is not None
    assert base["eval"]["metrics"]["content/content_net_distance"]["value"] is None  # no content net
    text = md.read_text()
    assert text.startswith("| spec | G params |") and "| identity (G(x) = x) |" in text
    assert "| photograph | identity PSNR / SSIM / F1 |" in text and "| camera |" in text


def test_bench_quality_scores_another_holdout_folder(tmp_path, capsys):
    """--holdout DIR: the known targets are cartoonize() of the folder's photographs."""
    import torch

    from gancr.data import cartoonize, load_image, save_image

    folder = tmp_path / "mine"
    folder.mkdir()
    g = torch.Generator().manual_seed(3)
    for name in ("one", "two", "three"):
        base = torch.rand(3, 6, 8, generator=g)
        save_image(torch.nn.functional.interpolate(base[None], size=(60, 80), mode="bilinear")[0], folder / f"{name}.png")
    code = main(["bench", "quality", "--spec", "examples/quickstart.yaml", "--steps", "2", "--size", "32",
                 "--feature-size", "32", "--holdout", str(folder), "--json", str(tmp_path / "b.json"),
                 "--out", str(tmp_path / "runs")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["settings"]["holdout"] == str(folder) and "cartoonize() of" in data["settings"]["target"]
    assert sorted(p["name"] for p in data["identity"]["per_image"]) == ["one", "three", "two"]
    target = load_image(tmp_path / "runs" / "holdout_targets" / "one.png")
    assert (target - cartoonize(load_image(folder / "one.png"))).abs().max() <= 1 / 255 + 1e-6
    assert data["runs"][0]["eval"]["reference"]["pairs"] == 3


def _supervised_bound():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "supervised_bound.py"
    module_spec = importlib.util.spec_from_file_location("supervised_bound", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_the_supervised_bound_cuts_the_same_crop_from_a_photograph_and_its_target():
    import torch

    from gancr.data import DeviceAugment

    bound = _supervised_bound()
    torch.manual_seed(0)
    photos = [torch.rand(3, 40 + 8 * i, 56) for i in range(3)]
    pairs = [torch.cat([p, 0.5 * p]) for p in photos]  # a "target" that is half the photograph
    x, t = bound.crop_batch(pairs, DeviceAugment(16, crop_scale=(0.2, 0.6)), 5)
    assert x.shape == t.shape == (5, 3, 16, 16)
    torch.testing.assert_close(t, 0.5 * x)
    assert not torch.equal(x[0], x[1])  # different crops


def test_the_supervised_bound_runs_and_reports_each_check(tmp_path, capsys):
    from gancr.data import load_image

    bound = _supervised_bound()
    out = tmp_path / "bound.json"
    assert bound.main(["--steps", "4", "--checks", "2", "--size", "32", "--feature-size", "32", "--json", str(out),
                       "--grid", str(tmp_path / "grid.png")]) == 0
    data = json.loads(out.read_text())
    assert [c["step"] for c in data["checks"]] == [2, 4] and data["best_step"] in (2, 4)
    assert data["identity"]["reference"]["pairs"] == 4  # the four held-out photographs
    assert "reference/psnr" in data["checks"][0]["vs_identity"]
    assert "best PSNR at step" in capsys.readouterr().out
    assert load_image(tmp_path / "grid.png").shape[-1] == 3 * 96  # input | fitted | target, longer side 3 x 32
