"""Tiled inference: layout, blending windows, frozen normalisation statistics, memory, seams.

Memory is measured two ways. In process, forward hooks record the largest tensor any layer
outputs (exact and immune to allocator noise: activations are what grows with the image).
In a fresh subprocess, the peak resident memory (``VmHWM`` of /proc/self/status, which sees
torch's CPU allocations where ``tracemalloc`` does not; reset to the current RSS through
/proc/self/clear_refs before each run, so that earlier peaks such as imports do not hide it)
is measured for a tiled and an untiled run of a generator whose activations dwarf the
interpreter's noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import gancr
from gancr.errors import GancrError
from gancr.inference import load_generator, stylize_tensor
from gancr.inference.tiling import axis_windows, frozen_norm_stats, tile_layout, tiled_forward
from inferencekit import TINY_IN_MODEL, run_cli, smooth_image, tiny_spec, write_png, write_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("tiling") / "run")


@pytest.fixture(scope="module")
def generator(run: Path) -> nn.Module:
    return load_generator(run)


def _model(norm: str) -> dict:
    model = {k: dict(v) for k, v in TINY_IN_MODEL.items()}
    model["generator"] = {
        "encoder": {"name": "conv", "widths": [8, 16, 16], "norm": norm},
        "neck": {"name": "resblocks", "blocks": 1, "norm": norm},
        "decoder": {"name": "unet", "norm": norm},
    }
    return model


# ----------------------------------------------------------------------------------------
# layout and windows
# ----------------------------------------------------------------------------------------

LAYOUTS = [(37, 64, 16, 4), (64, 64, 16, 4), (100, 48, 16, 4), (257, 64, 24, 8), (1000, 96, 32, 1), (333, 64, 31, 4)]


@pytest.mark.parametrize("length,tile,overlap,align", LAYOUTS)
def test_tiles_cover_the_image_aligned_with_enough_overlap(length, tile, overlap, align):
    spans = tile_layout(length, 8, tile, overlap, align).rows
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (a, b), (c, d) in zip(spans, spans[1:]):
        assert b - c >= overlap, spans  # neighbours overlap by at least `overlap`
        assert a < c and b < d
    for a, b in spans:
        assert a % align == 0, spans  # the same strided grid as the whole image
        assert b - a <= max(tile, length) if len(spans) == 1 else b - a <= tile + align - 1


@pytest.mark.parametrize("length,tile,overlap,align", LAYOUTS)
def test_windows_sum_to_one_and_fade_smoothly(length, tile, overlap, align):
    spans = tile_layout(length, 8, tile, overlap, align).rows
    windows = axis_windows(spans)
    total = torch.zeros(length)
    for (a, b), w in zip(spans, windows):
        assert w.shape == (b - a,) and bool((w >= 0).all())
        total[a:b] += w
    assert float((total - 1).abs().max()) < 1e-6
    if len(spans) > 1:  # a tile's first pixels (receptive field cut by its edge) weigh nothing
        assert windows[1][: overlap // 4].max() < 1e-6
        steps = max(float((w[1:] - w[:-1]).abs().max()) for w in windows)
        assert steps < 3.5 / overlap  # raised cosine across half the overlap: no jumps


def test_bad_tiles_are_refused():
    with pytest.raises(GancrError, match="at least 32 pixels"):
        tile_layout(100, 100, 16, 4, align=4)
    with pytest.raises(GancrError, match="less than the tile size"):
        tile_layout(100, 100, 64, 64, align=4)
    with pytest.raises(GancrError, match="smaller overlap"):
        tile_layout(200, 200, 64, 62, align=4)


# ----------------------------------------------------------------------------------------
# the tiled result equals the untiled one
# ----------------------------------------------------------------------------------------


def test_frozen_statistics_reproduce_the_whole_image(generator):
    x = smooth_image(64, 80)
    with torch.no_grad():
        ref = generator(x)
        with frozen_norm_stats(generator, x) as frozen:
            again = generator(x)
            part = generator(x[:, :, :32, :48])
    assert frozen == sum(isinstance(m, nn.InstanceNorm2d) for m in generator.modules())
    assert float((again - ref).abs().max()) < 1e-5
    assert float((part - ref[:, :, :32, :48]).abs().max()) > 1e-3  # cut receptive field at the edges ...
    assert float((part[:, :, :8, :24] - ref[:, :, :8, :24]).abs().max()) < 1e-5  # ... not inside
    assert "forward" not in vars(next(m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)))


def test_tiled_matches_untiled_with_instance_norm(generator):
    x = smooth_image(176, 232)
    ref = stylize_tensor(generator, x)
    tiled = stylize_tensor(generator, x, tile=96, overlap=48, stats_tiles=0)  # statistics over all tiles
    err = (tiled - ref).abs()
    assert float(err.max()) < 5e-3 and float(err.mean()) < 2e-4, (float(err.max()), float(err.mean()))
    # each tile normalised by its own statistics is visibly wrong: the freezing is what matters
    own = tiled_forward(generator, x, 96, 48, freeze_norms=False).clamp(0, 1)
    assert float((own - ref).abs().mean()) > 20 * float(err.mean())


def test_tiled_matches_untiled_with_batch_norm(tmp_path):
    g = load_generator(write_run(tmp_path / "bn", tiny_spec(_model("batch"))))
    x = smooth_image(130, 170, seed=3)
    err = (stylize_tensor(g, x, tile=64, overlap=32) - stylize_tensor(g, x)).abs()
    assert float(err.max()) < 1e-2 and float(err.mean()) < 5e-4


def test_statistics_from_a_sample_of_tiles(generator):
    x = smooth_image(176, 232)  # 3 x 5 tiles of 96
    assert len(tile_layout(176, 232, 96, 48, 4)) == 15
    exact = stylize_tensor(generator, x, tile=96, overlap=48, stats_tiles=0)
    assert torch.equal(stylize_tensor(generator, x, tile=96, overlap=48, stats_tiles=15), exact)
    sampled = stylize_tensor(generator, x, tile=96, overlap=48, stats_tiles=4)  # an estimate ...
    assert float((sampled - exact).abs().mean()) > 1e-4
    assert _seam_ratio(sampled, tile_layout(176, 232, 96, 48, 4).edges[1]) < 1.5  # ... shared by all tiles


def test_statistics_calls_are_numbered_per_forward(generator):
    from gancr.inference.tiling import tile_statistics

    x = smooth_image(100, 140)
    layout = tile_layout(100, 140, 64, 32, 4)
    calls, sampled = tile_statistics(generator, x, layout, 4)
    norms = [m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert calls.order == norms and sorted(calls.stats) == list(range(len(norms))) and sampled == len(layout)
    assert all("forward" not in vars(m) for m in norms)  # the layers are back to normal


def test_an_image_within_one_tile_is_not_tiled(generator):
    x = smooth_image(60, 70)
    assert torch.equal(stylize_tensor(generator, x, tile=96), stylize_tensor(generator, x))


def test_batches_and_odd_sizes(generator):
    x = torch.cat([smooth_image(101, 157, seed=1), smooth_image(101, 157, seed=2)])
    out = stylize_tensor(generator, x, tile=80, overlap=48, stats_tiles=0)  # 2 x 4 tiles, padded at the end
    ref = stylize_tensor(generator, x)
    assert out.shape == x.shape
    assert float((out - ref).abs().mean()) < 1e-4 and float((out - ref).abs().max()) < 2e-2


# ----------------------------------------------------------------------------------------
# no seams
# ----------------------------------------------------------------------------------------


def _seam_ratio(y: torch.Tensor, edges: list[int]) -> float:
    """Largest horizontal gradient at the tile edges (+-1 px), over the median column's."""
    g = (y[..., 1:] - y[..., :-1]).abs().mean(dim=(0, 1, 2))  # per column boundary
    at = [g[p + d] for p in edges for d in (-2, -1, 0) if 0 <= p + d < g.numel()]
    return float(torch.stack(at).max() / g.median())


def test_no_seams_at_tile_edges(generator):
    x = smooth_image(128, 288, noise=0.0)
    layout = tile_layout(128, 288, 96, 32, 4)
    edges = layout.edges[1]
    tiled = stylize_tensor(generator, x, tile=96, overlap=32)
    with torch.no_grad():  # abutting tiles, each with its own statistics: seams
        naive = torch.cat([generator(x[..., i:i + 96]) for i in range(0, 288, 96)], dim=-1)
    assert _seam_ratio(naive, [96, 192]) > 2.0  # the measure sees seams where they are ...
    assert _seam_ratio(tiled, edges) < 1.5  # ... and finds none in the blended result
    assert _seam_ratio(stylize_tensor(generator, x), edges) < 1.5


# ----------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------


def _largest_activation(module: nn.Module, fn) -> int:
    largest = [0]

    def hook(m, inputs, output):
        for t in output if isinstance(output, (list, tuple)) else [output]:
            if isinstance(t, torch.Tensor):
                largest[0] = max(largest[0], t.numel())

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    return largest[0]


def test_largest_activation_is_bounded_by_the_tile(generator):
    x = smooth_image(256, 352)
    untiled = _largest_activation(generator, lambda: stylize_tensor(generator, x))
    tiled = _largest_activation(generator, lambda: stylize_tensor(generator, x, tile=96, overlap=24))
    one_tile = _largest_activation(generator, lambda: generator(torch.rand(1, 3, 96 + 3, 96 + 3)))
    assert tiled <= one_tile < untiled / 8  # neither the tiles nor the statistics passes exceed a tile


RSS_SCRIPT = textwrap.dedent(
    """
    import json, re, torch
    torch.set_num_threads(1)
    import gancr
    from gancr.inference import stylize_tensor

    def status(key):  # kB -> bytes
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read())[1]) * 1024

    def peak_of(run):
        open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark to the current RSS
        start = status("VmRSS")
        run()
        return status("VmHWM") - start

    spec = {"model": {"generator": {"encoder": {"name": "conv", "widths": [32]}, "neck": {"name": "identity"},
                                    "decoder": {"name": "upsample_conv"}},
                      "content_net": {"share_encoder": True}}, "training": {"image_size": 32}}
    g = gancr.build(spec).generator.eval()
    x = torch.rand(1, 3, 768, 1024)
    stylize_tensor(g, x[..., :64, :64], tile=32)  # warm up torch's kernels
    tiled = peak_of(lambda: stylize_tensor(g, x, tile=128, overlap=32))
    untiled = peak_of(lambda: stylize_tensor(g, x))
    print(json.dumps({"tiled": tiled, "untiled": untiled}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_of_a_tiled_run_stays_under_a_bound_the_untiled_run_exceeds():
    """Peak resident memory (VmHWM, reset before each run), in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, timeout=300, cwd=REPO)
    if proc.returncode != 0 and "clear_refs" in proc.stderr:
        pytest.skip("cannot reset the peak RSS here (/proc/self/clear_refs)")
    assert proc.returncode == 0, proc.stderr
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    # one 32-channel float32 map of the 768x1024 image is 96 MiB; the untiled run holds at
    # least the convolution's output and the instance norm's at once
    bound = 96 * 2**20
    assert peaks["tiled"] < bound < peaks["untiled"], {k: f"{v / 2**20:.0f} MiB" for k, v in peaks.items()}


# ----------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------


def test_cli_tile_and_overlap(run, tmp_path):
    x = smooth_image(150, 203)
    write_png(tmp_path / "in" / "photo.png", x)
    code, out, err = run_cli("stylize", "--checkpoint", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "a"),
                             "--tile", "96", "--overlap", "48", "--stats-tiles", "0")
    assert code == 0, err
    assert "tiles of 96 px overlapping by >= 48 px" in err and "measured over all tiles" in err
    from gancr.data import load_image

    tiled = load_image(tmp_path / "a" / "photo.png")
    run_cli("stylize", "--checkpoint", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "b"))
    whole = load_image(tmp_path / "b" / "photo.png")
    assert tiled.shape == whole.shape == (3, 150, 203)
    assert float((tiled - whole).abs().mean()) < 2e-3  # 8-bit rounding


def test_cli_rejects_overlap_without_tile(run, tmp_path):
    code, _, err = run_cli("stylize", "--checkpoint", str(run), "x.png", "--out", str(tmp_path), "--overlap", "8")
    assert code == 2 and "go with --tile" in err
    write_png(tmp_path / "p.png", smooth_image(100, 100))
    code, _, err = run_cli("stylize", "--checkpoint", str(run), str(tmp_path / "p.png"), "--out", str(tmp_path / "o"),
                           "--tile", "64", "--overlap", "64")
    assert code == 2 and "overlap 64" in err
