"""``gancr report``: the HTML page, its PNGs, the eval table, and that it renders in Chromium."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gancr.cli import main
from gancr.data import save_image
from gancr.evaluation import evaluate, write_json
from gancr.evaluation.report import MAX_SAMPLES, ReportError, write_report

REPO = Path(__file__).resolve().parents[1]

SPEC = {
    "model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]}}},
    "training": {"stages": [{"name": "separate", "steps": 40}, {"name": "joint", "steps": 80, "w_c": 1.0, "w_g": 1.0}],
                 "image_size": 32},
}


def _fake_run(root: Path, steps: int = 120, samples: int = 12) -> Path:
    """A run directory as the trainer writes it: spec.yaml, metrics.jsonl, samples/, eval.json."""
    root.mkdir(parents=True)
    (root / "spec.yaml").write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    g = torch.Generator().manual_seed(0)
    rows, t0 = [], time.time()
    for step in range(1, steps + 1):
        stage = 1 if step <= 40 else 2
        noise = float(torch.rand((), generator=g))
        row = {"step": step, "stage": stage, "loss/generator": 2.0 / step ** 0.3 + 0.1 * noise,
               "loss/style": 0.8 + 0.05 * noise, "loss/reconstruction": 0.5 / step ** 0.5,
               "loss/discriminator": 0.5, "loss/style/lsgan": 0.8, "loss/reconstruction/l1": 0.5 / step ** 0.5,
               "weight/w_c": 0.0 if stage == 1 else 1.0, "weight/w_g": 1.0, "lr/generator": 2e-4,
               "images_per_s": 20 + noise, "time": t0 + 0.2 * step, "skipped": 0.0}
        if stage == 2:
            row.update({"loss/content": 0.3, "loss/content/l1": 0.3})
        rows.append(json.dumps(row))
    rows.append('{"step": 121, "stage": 2, "loss/gen')  # a line cut by a kill
    (root / "metrics.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for i in range(samples):
        img = torch.rand(3, 34, 100, generator=g)
        save_image(img, root / "samples" / f"step_{(i + 1) * 10:07d}.png")
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = _fake_run(tmp_path_factory.mktemp("report") / "run")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    result = evaluate(lambda t: t.flip(-1), x, x.flip(0), reference=x, feature_size=32, kid_subsets=5)
    write_json(result, run / "eval.json")
    return run


def test_report_has_curves_weights_throughput_samples_and_eval(run_dir, capsys):
    pytest.importorskip("matplotlib")
    assert main(["report", str(run_dir)]) == 0
    html_file = run_dir / "report" / "index.html"
    assert f"wrote {html_file}" in capsys.readouterr().out
    page = html_file.read_text(encoding="utf-8")
    for section in ("Loss curves per stage", "Balancer weights", "Throughput", "Sample grids", "Evaluation"):
        assert section in page
    assert "stage 1: separate (40 steps)" in page and "stage 2: joint (80 steps)" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    for name in ("index-losses.png", "index-weights.png", "index-throughput.png"):
        assert name in images
    samples = [i for i in images if "-sample-" in i]
    assert len(samples) == MAX_SAMPLES and samples[-1] == "index-sample-step_0000120.png"
    for name in images:  # every picture is next to the page, and is a PNG
        assert (html_file.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the eval table: every metric, its direction and its features
    for key in ("content/ssim", "style/kid", "reference/psnr", "content/content_net_distance"):
        assert f"<td>{key}</td>" in page
    assert "random weights" in page
    assert "120 of 120" in page  # steps logged (the cut line skipped)
    assert "median images/s" in page


def test_report_elsewhere_and_an_explicit_eval_file(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    other = tmp_path / "eval-copy.json"
    other.write_text((run_dir / "eval.json").read_text())
    out = write_report(run_dir, tmp_path / "site" / "run.html", eval_json=other)
    assert (tmp_path / "site" / "run-losses.png").is_file()
    assert str(other) in out.read_text()


def test_report_without_eval_says_how_to_make_one(tmp_path):
    pytest.importorskip("matplotlib")
    run = _fake_run(tmp_path / "run", steps=5, samples=0)
    page = write_report(run).read_text()
    assert "No evaluation yet" in page and "gancr eval --checkpoint" in page
    assert "No sample grids" in page


def test_report_errors(tmp_path, capsys, monkeypatch):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    run = _fake_run(tmp_path / "run", steps=3, samples=0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ReportError, match=r'pip install "gancr\[report\]"'):
        write_report(run)


def _docs_script():
    spec = importlib.util.spec_from_file_location("build_report_screenshot", REPO / "docs" / "build_report_screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    """The docs' screenshot check (docs/build_report_screenshot.py) on a run: plots and samples on screen."""
    pytest.importorskip("matplotlib")
    docs = _docs_script()
    if docs.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    measured = docs.build(tmp_path / "report.png", run_dir)
    assert measured["not_white"] > 0.03
    assert (tmp_path / "report.png").is_file()
