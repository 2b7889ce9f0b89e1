"""High-resolution inference in bounded memory: overlapping tiles, smooth blending, frozen norms.

A photograph of 4096x3072 pixels does not fit through a generator at once on most machines
(its first feature maps alone take gigabytes). :func:`tiled_forward` runs the network on
overlapping tiles and blends them, so memory depends on the tile size, not the image size:

* **Layout.** Tiles start on multiples of the network's reduction (the stride of its deepest
  feature), so every tile samples the same strided grid as the whole image would, and two
  tiles overlap by at least ``overlap`` pixels. The last tile of a row or column ends at the
  image border.
* **Blending.** Each tile's output is weighted by a separable window: 0 in the outer quarter
  of each overlap with a neighbour (pixels whose receptive field the tile edge cut), a
  raised cosine (``sin^2``) across the middle half, 1 beyond; the neighbour's window falls
  as ``cos^2``, so the weights sum to one (they are normalised explicitly, which also covers
  uneven overlaps). No seams, and no cut edge is ever used.
* **Normalisation statistics.** Instance norm (gancr's default) and group norm compute their
  mean and variance over the whole feature map, so a tile would be normalised by its own
  statistics: a dark tile would be brightened, and seams would appear. :func:`tile_statistics`
  measures, call by call in forward order, the statistics the untiled network would compute:
  each tile runs up to the layer (the earlier calls frozen at their measured statistics)
  and the layer's input is summed over the tile's core, a partition of the image cut in
  the middle of the overlaps. Over all tiles this is exact (the tiled result is the untiled
  one); over a sample of tiles it is an estimate, for speed. The tiles then run with every
  call frozen. Batch norm in eval mode uses its running statistics and needs nothing.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import MethodType

import torch
from torch import Tensor, nn

from gancr._torch_compat import BatchNormBase, InstanceNormBase
from gancr.errors import GancrError

__all__ = [
    "TileLayout",
    "tile_layout",
    "axis_windows",
    "frozen_norm_stats",
    "tile_statistics",
    "tiled_forward",
    "DEFAULT_STATS_TILES",
    "EXACT_STATS_LIMIT",
    "default_overlap",
    "reduction_of",
]


@dataclass(frozen=True)
class TileLayout:
    """Tile spans along each axis: ``rows[i] = (top, bottom)``, ``cols[j] = (left, right)``."""

    rows: tuple[tuple[int, int], ...]
    cols: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        for r in self.rows:
            for c in self.cols:
                yield r, c

    @property
    def edges(self) -> tuple[list[int], list[int]]:
        """Inner tile edges (row and column positions where a tile starts or ends)."""
        h = self.rows[-1][1]
        w = self.cols[-1][1]
        ys = sorted({p for span in self.rows for p in span if 0 < p < h})
        xs = sorted({p for span in self.cols for p in span if 0 < p < w})
        return ys, xs


def reduction_of(module: nn.Module) -> int:
    """The stride a network's input must be a multiple of (``module.reduction``, else 1)."""
    return max(1, int(getattr(module, "reduction", 1)))


def default_overlap(tile: int) -> int:
    """The overlap used when none is given: an eighth of the tile, at least 32 pixels (and at
    most a quarter of the tile)."""
    return min(max(32, tile // 8), tile // 4)


def _axis_spans(length: int, tile: int, overlap: int, align: int) -> tuple[tuple[int, int], ...]:
    """Evenly spread spans of ``tile`` pixels, starting on multiples of ``align``, the last ending at ``length``."""
    if length <= tile:
        return ((0, length),)
    last = (length - tile) // align * align  # aligned down: the last span may be up to align-1 longer
    step = tile - overlap - (align - 1)  # flooring starts to ``align`` may shorten an overlap by align-1
    if step < align:
        raise GancrError(
            f"overlap {overlap} leaves no room to move between tiles of {tile} pixels aligned to {align}: "
            "use a smaller overlap or a larger tile"
        )
    n = -(-last // step) + 1  # spans, so that consecutive starts are at most ``step`` apart
    starts = sorted({(i * last) // (n - 1) // align * align for i in range(n - 1)} | {last})
    return tuple((s, s + tile if s != last else length) for s in starts)


def tile_layout(height: int, width: int, tile: int, overlap: int, align: int = 1) -> TileLayout:
    """Overlapping tiles of about ``tile`` pixels covering a ``height x width`` image.

    Args:
        height, width: the image size.
        tile: the tile side (rounded down to a multiple of ``align``).
        overlap: the least overlap between neighbouring tiles, in pixels.
        align: tiles start on multiples of this (the network's reduction).

    Example:
        >>> tile_layout(100, 40, tile=48, overlap=16, align=4).rows
        ((0, 48), (24, 72), (52, 100))
    """
    tile = tile // align * align
    least = max(32, 2 * align)
    if tile < least:
        raise GancrError(f"tile {tile}: tiles must be at least {least} pixels (32, and twice the network's reduction {align})")
    if overlap < 0 or overlap >= tile:
        raise GancrError(f"overlap {overlap}: must be at least 0 and less than the tile size {tile}")
    return TileLayout(_axis_spans(height, tile, overlap, align), _axis_spans(width, tile, overlap, align))


def _ramp(n: int, margin: float) -> Tensor:
    """Weights rising from 0 to 1 across an overlap of ``n`` pixels; ``1 - ramp`` is its mirror.

    The first and last ``margin`` of the overlap (a fraction) are flat at 0 and 1: those
    pixels are near the edge of one of the two tiles, where its receptive field was cut, so
    they come from the other tile alone. In between, a raised cosine (``sin^2``).
    """
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    u = ((t - margin) / (1 - 2 * margin)).clamp(0, 1) if margin > 0 else t
    return torch.sin(u * (math.pi / 2)) ** 2


def axis_windows(spans: tuple[tuple[int, int], ...], margin: float = 0.25) -> list[Tensor]:
    """One blending window per span along an axis, normalised so that they sum to one.

    A window is 1 except across its overlaps with the previous and next spans, where it
    rises (falls) by :func:`_ramp`; the overlap's extent is the actual one, so uneven
    overlaps blend as smoothly as the others.

    Example:
        >>> [w.shape[0] for w in axis_windows(((0, 48), (32, 80)))]
        [48, 48]
    """
    if not 0 <= margin < 0.5:
        raise GancrError(f"margin {margin}: must be at least 0 and below 0.5")
    length = spans[-1][1]
    windows = []
    for i, (a, b) in enumerate(spans):
        w = torch.ones(b - a, dtype=torch.float64)
        if i > 0:
            n = min(b, spans[i - 1][1]) - a  # overlap with the previous span
            if n > 0:
                w[:n] *= _ramp(n, margin)
        if i + 1 < len(spans):
            n = b - max(a, spans[i + 1][0])
            if n > 0:
                w[b - a - n:] *= _ramp(n, margin).flip(0)
        windows.append(w)
    total = torch.zeros(length, dtype=torch.float64)
    for (a, b), w in zip(spans, windows):
        total[a:b] += w
    if margin > 0 and bool((total <= 1e-9).any()):  # possible only where three spans overlap
        return axis_windows(spans, 0.0)
    return [(w / total[a:b]).float() for (a, b), w in zip(spans, windows)]


# ----------------------------------------------------------------------------------------
# normalisation layers whose statistics depend on the whole feature map
# ----------------------------------------------------------------------------------------


def _per_sample_norm(module: nn.Module) -> bool:
    """Whether ``module`` normalises with statistics of the sample it sees (tile-dependent)."""
    if isinstance(module, InstanceNormBase):
        return module.training or not module.track_running_stats
    return isinstance(module, nn.GroupNorm)


def _groups(module: nn.Module, x: Tensor) -> int:
    return module.num_groups if isinstance(module, nn.GroupNorm) else x.shape[1]


def _stats(module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample (mean, biased variance) over each group's channels and all positions."""
    g = _groups(module, x)
    v = x.detach().float().reshape(x.shape[0], g, -1)
    var, mean = torch.var_mean(v, dim=2, unbiased=False)
    return mean, var


def _normalize(module: nn.Module, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """``module``'s normalisation of ``x`` with the given per-sample (B, groups) statistics."""
    b, c = x.shape[:2]
    g = _groups(module, x)
    if mean.shape[0] != b:
        raise GancrError(f"frozen normalisation statistics are for a batch of {mean.shape[0]}, got {b}")
    scale = torch.rsqrt(var + module.eps).to(x.dtype)
    y = ((x.reshape(b, g, -1) - mean.to(x.dtype)[..., None]) * scale[..., None]).reshape(x.shape)
    weight = getattr(module, "weight", None)
    if weight is not None:
        shape = (1, c) + (1,) * (x.dim() - 2)
        y = y * weight.reshape(shape) + module.bias.reshape(shape)
    return y


class _Stop(Exception):
    """Ends a forward pass early, once the layer whose statistics are collected has run."""


class _NormCalls:
    """Takes over a network's per-sample normalisation layers, numbering their calls.

    Within ``with``, every instance/group-norm call of a forward pass gets the next number
    (:meth:`run` starts each pass at 0; a layer called twice, such as an encoder shared by
    the generator and the content net, gets two). Call ``i`` then normalises with
    ``stats[i]`` when it has been set, adds its input's sums to ``collecting`` when that is
    ``i`` (and ends the pass), or else normalises by its own statistics as usual.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.layers = [m for m in module.modules() if _per_sample_norm(m)]
        self.order: list[nn.Module] | None = None  # the layer of each call, from the first pass
        self.stats: dict[int, tuple[Tensor, Tensor]] = {}
        self.collecting: int | None = None
        #: this tile's core: top, bottom, left, right (None: to the end, padding included), tile h, w
        self.core: tuple[int, int | None, int, int | None, int, int] | None = None
        self.sums: list[Tensor] = []
        self.counter = 0
        self._seen: list[nn.Module] = []

    def __enter__(self) -> _NormCalls:
        for m in self.layers:
            m.forward = MethodType(self._dispatch(m.forward), m)  # type: ignore[method-assign]
        self._handle = self.module.register_forward_pre_hook(lambda module, inputs: self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
        for m in self.layers:
            m.__dict__.pop("forward", None)

    def _start(self) -> None:
        """A forward pass of the whole network begins: number its calls from 0."""
        self.counter = 0
        self._seen = []

    def _dispatch(self, original: object) -> object:
        def forward(layer: nn.Module, x: Tensor) -> Tensor:
            i = self.counter
            self.counter += 1
            self._seen.append(layer)
            if self.order is not None and (i >= len(self.order) or self.order[i] is not layer):
                raise GancrError("tiling: the network called its normalisation layers in another order for this tile")
            if i in self.stats:
                return _normalize(layer, x, *self.stats[i])
            if i == self.collecting:
                self._accumulate(layer, x)
                raise _Stop
            return original(x)  # type: ignore[operator]

        return forward

    def run(self, x: Tensor) -> Tensor | None:
        """``module(x)``; None when it stopped at the collected layer. The first run numbers the calls."""
        try:
            y = self.module(x)
        except _Stop:
            return None
        if self.order is None:
            self.order = list(self._seen)
        elif len(self._seen) != len(self.order):
            raise GancrError("tiling: the network called its normalisation layers a different number of times")
        return y

    def _accumulate(self, layer: nn.Module, x: Tensor) -> None:
        """Add the sums of ``x`` over this tile's core (at the layer's resolution) to ``sums``."""
        assert self.core is not None
        top, bottom, left, right, th, tw = self.core
        h, w = x.shape[-2:]
        sy, sx = _scale(th, h), _scale(tw, w)
        rows = slice(top // sy, None if bottom is None else bottom // sy)
        cols = slice(left // sx, None if right is None else right // sx)
        v = x[..., rows, cols].double().reshape(x.shape[0], _groups(layer, x), -1)
        sums = torch.stack([v.sum(-1), (v * v).sum(-1), torch.full_like(v[..., 0], v.shape[-1])])
        self.sums.append(sums.cpu())


def _scale(size: int, mapped: int) -> int:
    """The stride of a feature map of ``mapped`` pixels for an input of ``size`` (a power of 2
    when the network padded the input; exact otherwise)."""
    if size % mapped == 0:
        return size // mapped
    return 2 ** round(math.log2(size / mapped))


def _cores(spans: tuple[tuple[int, int], ...], align: int) -> list[tuple[int, int | None]]:
    """A partition of the axis, one core per span, cut in the middle of each overlap.

    Core boundaries are multiples of ``align``, so that they fall on every feature map's
    grid; the last core (``None``) runs to the end of the feature map, padding included:
    the untiled network pads there too.
    """
    cuts = [0] + [((a + prev_b) // 2) // align * align for (a, _), (_, prev_b) in zip(spans[1:], spans)]
    return [(cuts[i], cuts[i + 1] if i + 1 < len(cuts) else None) for i in range(len(spans))]


def _sample(ny: int, nx: int, k: int) -> list[int]:
    """About ``k`` tiles of an ``ny x nx`` grid (row-major indices), spread evenly over it.

    The grid is cut into ``ky x kx`` strata of the grid's proportions and the middle tile of
    each is taken; every tile when ``k`` is 0 or at least the number of tiles.
    """
    if k <= 0 or k >= ny * nx:
        return list(range(ny * nx))
    ky = min(ny, max(1, round(math.sqrt(k * ny / nx))))
    kx = min(nx, max(1, k // ky))
    rows = sorted({int((i + 0.5) * ny / ky) for i in range(ky)})
    cols = sorted({int((j + 0.5) * nx / kx) for j in range(kx)})
    return [r * nx + c for r in rows for c in cols]


def tile_statistics(
    module: nn.Module, x: Tensor, layout: TileLayout, align: int, *, sample: int = 0, device: torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[_NormCalls, int]:
    """Measure every per-sample normalisation's statistics over the tiles, layer by layer.

    For call ``k`` in forward order, each sampled tile runs up to that layer -- the calls
    before it normalised with the statistics already measured -- and the layer's input is
    summed over the tile's *core* (its share of a partition of the image, cut in the middle
    of the overlaps, so nothing is counted twice and nothing near a cut tile edge is
    counted). The sums give the mean and variance the untiled network would compute there,
    exactly when every tile is sampled (up to the receptive field reaching past the middle
    of an overlap), and an estimate from part of the image otherwise.

    Returns the controller (use it as a context manager to run tiles with the statistics
    frozen) and how many tiles were sampled. ``progress(done, total)`` is called after each
    partial pass.
    """
    device = device or x.device
    calls = _NormCalls(module)
    tiles = list(layout)
    done = 0
    cores_y = _cores(layout.rows, align)
    cores_x = _cores(layout.cols, align)
    cores = [(cy, cx) for cy in cores_y for cx in cores_x]
    chosen = _sample(len(layout.rows), len(layout.cols), sample)
    with calls:
        least = max(32, 2 * align)  # the first pass numbers the calls: on a small input
        calls.run(torch.zeros(x.shape[0], x.shape[1], least, least, device=device, dtype=torch.float32))
        assert calls.order is not None
        for k in range(len(calls.order)):
            calls.collecting, calls.sums = k, []
            for t in chosen:
                (top, bottom), (left, right) = tiles[t]
                (ctop, cbottom), (cleft, cright) = cores[t]
                calls.core = (ctop - top, None if cbottom is None else cbottom - top,
                              cleft - left, None if cright is None else cright - left, bottom - top, right - left)
                calls.run(x[:, :, top:bottom, left:right].to(device))
                done += 1
                if progress is not None:
                    progress(done, len(calls.order) * len(chosen))
            total = torch.stack(calls.sums).sum(0)  # (3, B, G): sum, sum of squares, count
            mean = total[0] / total[2]
            var = (total[1] / total[2] - mean * mean).clamp_min(0)
            calls.stats[k] = (mean.float().to(device), var.float().to(device))
        calls.collecting, calls.sums = None, []
    return calls, len(chosen)


@contextmanager
def frozen_norm_stats(module: nn.Module, reference: Tensor) -> Iterator[int]:
    """Within the block, ``module``'s instance and group norms use ``reference``'s statistics.

    Runs ``module(reference)`` once, recording the mean and variance each per-sample
    normalisation call computes, then makes those calls use them. Everything is restored
    on exit. Yields the number of frozen calls.

    Args:
        module: the network (a generator, or a generator and content net blended).
        reference: ``(B, 3, h, w)``; the batch must be the one of the inputs that follow.
    """
    calls = _NormCalls(module)
    recorded: list[tuple[Tensor, Tensor]] = []

    def record(m: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        recorded.append(_stats(m, inputs[0]))

    handles = [m.register_forward_pre_hook(record) for m in calls.layers]
    try:
        with calls, torch.no_grad():
            calls.run(reference)
    finally:
        for h in handles:
            h.remove()
    calls.stats = dict(enumerate(recorded))
    with calls:
        yield len(recorded)


_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)


def _warn_unhandled(module: nn.Module) -> None:
    """Warn about layers whose whole-image statistics tiling cannot freeze."""
    names = [
        name
        for name, m in module.named_modules()
        if isinstance(m, _GLOBAL_POOLS)
        or (isinstance(m, nn.LayerNorm) and len(m.normalized_shape) >= 2)
        or (isinstance(m, BatchNormBase) and m.training)
    ]
    if names:
        warnings.warn(
            f"tiling: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} compute statistics over the "
            "whole feature map that gancr cannot freeze; tiles may not match the untiled result",
            UserWarning,
            stacklevel=3,
        )


#: How many tiles the normalisation statistics are measured on by default (0: all of them).
DEFAULT_STATS_TILES = 0
#: With ``stats_tiles`` left to its default, images of more tiles than this get their statistics
#: estimated from this many (the exact pass costs one partial pass per tile and norm layer).
EXACT_STATS_LIMIT = 16


@torch.no_grad()
def tiled_forward(
    module: nn.Module,
    x: Tensor,
    tile: int,
    overlap: int | None = None,
    *,
    stats_tiles: int | None = None,
    freeze_norms: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> Tensor:
    """``module(x)`` computed tile by tile, blended without seams, in memory bounded by ``tile``.

    Args:
        module: maps ``(B, 3, h, w)`` to ``(B, C, h, w)`` for any ``h, w`` (a gancr generator);
            its ``reduction`` attribute, when present, aligns the tiles.
        x: ``(B, 3, H, W)``; stays where it is (the CPU for big images) while each tile goes
            to the module's device, so the device only ever holds one tile's activations.
        tile: tile side in pixels (e.g. 512).
        overlap: least overlap of neighbouring tiles (default :func:`default_overlap`).
        stats_tiles: how many tiles (spread over the image) instance/group-norm statistics
            are estimated from; 0 measures them over all tiles, which gives the untiled
            result (see :func:`tile_statistics`). The default (None) is 0 up to
            :data:`EXACT_STATS_LIMIT` tiles, and an estimate from that many beyond, with a warning.
        freeze_norms: False normalises each tile by its own statistics (for comparison only).
        progress: called as ``progress(phase, done, total)``, phase ``"statistics"`` (partial
            passes) or ``"tiles"``.

    Returns:
        ``(B, C, H, W)`` on ``x``'s device, float32.
    """
    if x.dim() != 4:
        raise GancrError(f"tiled_forward: expected (B, 3, H, W), got {tuple(x.shape)}")
    tile = int(tile)
    overlap = default_overlap(tile) if overlap is None else int(overlap)
    auto_stats = stats_tiles is None
    stats_tiles = DEFAULT_STATS_TILES if stats_tiles is None else int(stats_tiles)
    if stats_tiles < 0:
        raise GancrError(f"stats_tiles {stats_tiles}: give a number of tiles, or 0 for all of them")
    align = reduction_of(module)
    b, _, h, w = x.shape
    layout = tile_layout(h, w, tile, overlap, align)
    if auto_stats and stats_tiles == 0 and len(layout) > EXACT_STATS_LIMIT \
            and any(_per_sample_norm(m) for m in module.modules()):
        stats_tiles = EXACT_STATS_LIMIT
        warnings.warn(
            f"tiling: {len(layout)} tiles; instance/group-norm statistics are estimated from {stats_tiles} of them "
            "(measuring them over all tiles costs a partial pass per tile and norm layer: pass --stats-tiles 0 for "
            "the exact, slower result)", UserWarning, stacklevel=3,
        )
    param = next(module.parameters(), None)
    device = param.device if param is not None else x.device
    if len(layout) == 1:
        return module(x.to(device)).float().to(x.device)
    _warn_unhandled(module)
    wy = axis_windows(layout.rows)
    wx = axis_windows(layout.cols)
    calls: _NormCalls | None = None
    if freeze_norms and any(_per_sample_norm(m) for m in module.modules()):
        calls, _ = tile_statistics(module, x, layout, align, sample=stats_tiles, device=device,
                                   progress=None if progress is None else lambda d, n: progress("statistics", d, n))
    out: Tensor | None = None
    with calls if calls is not None else contextlib.nullcontext():
        for i, (top, bottom) in enumerate(layout.rows):
            for j, (left, right) in enumerate(layout.cols):
                if progress is not None:
                    progress("tiles", i * len(layout.cols) + j, len(layout))
                piece = x[:, :, top:bottom, left:right].to(device)
                y = (calls.run(piece) if calls is not None else module(piece)).float().to(x.device)
                if out is None:
                    out = torch.zeros((b, y.shape[1], h, w), dtype=torch.float32, device=x.device)
                window = wy[i].to(y.device)[:, None] * wx[j].to(y.device)[None, :]
                out[:, :, top:bottom, left:right].addcmul_(y, window)
                del y
    if progress is not None:
        progress("tiles", len(layout), len(layout))
    assert out is not None
    return out

