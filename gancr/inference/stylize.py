"""Stylising images with a trained generator: any image size, strength, tiles, files in and out."""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gancr.data import DataWarning, is_image_name, load_alpha, load_image, resolve_source, save_image
from gancr.devices import activation_bytes, available_memory, is_allocation_error, resolve_device
from gancr.errors import DataError, GancrError, ResourceError
from gancr.storage.files import check_output, human_size
from gancr.inference.load import open_run
from gancr.inference.strength import StrengthBlend, check_alpha
from gancr.inference.tiling import tiled_forward
from gancr.progress import Progress

__all__ = ["fastest_precision", "stylize", "stylize_tensor", "Stylized", "StylizeOptions"]


@dataclass(frozen=True)
class StylizeOptions:
    """How to stylise: the strength, the tiles, the precision.

    Args:
        alpha: strength, from 0 (the input itself) to 1 (full style; the default):
            ``x + alpha * (G(x) - x)``, see :mod:`gancr.inference.strength`.
        tile: run in tiles of this many pixels (bounded memory for big images); see
            :mod:`gancr.inference.tiling`. Default: untiled, unless an image needs more memory
            than is free (then tiled, with a warning that says so).
        overlap: least overlap of neighbouring tiles (default: an eighth of the tile, at least
            32, at most a quarter).
        stats_tiles: when tiling, estimate instance/group-norm statistics from this many tiles
            spread over the image (faster); default 0: measure them over all tiles, which
            gives the untiled result.
        precision: ``fp32``, ``bf16`` (autocast), or ``auto``: fp32 on the CPU; on CUDA the
            faster of the two for this generator (bf16 is not always faster), measured once
            per generator on the first untiled image (:func:`fastest_precision`).
    """

    alpha: float = 1.0
    tile: int | None = None
    overlap: int | None = None
    stats_tiles: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        if self.precision not in ("auto", "fp32", "bf16"):
            raise GancrError(f"stylize: precision must be auto, fp32 or bf16, got {self.precision!r}")


def _options(options: StylizeOptions | None, settings: dict[str, Any], who: str) -> StylizeOptions:
    """``options`` with the fields given one by one; an unknown one is an error naming the known."""
    known = {f.name for f in fields(StylizeOptions)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"{who}() got unknown settings {unknown}; StylizeOptions has: {', '.join(sorted(known))}")
    return replace(options or StylizeOptions(), **settings)


@torch.no_grad()
def stylize_tensor(
    generator: nn.Module,
    image: Tensor,
    options: StylizeOptions | None = None,
    *,
    tile_progress: Callable[[str, int, int], None] | None = None,
    **settings: Any,
) -> Tensor:
    """``G(image)`` for ``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1], any size: the same shape, on
    the input's device.

    Args:
        generator: a generator (:func:`~gancr.inference.load_generator`); it runs where it is.
        image: the image(s).
        options: how to stylise (:class:`StylizeOptions`: strength, tiles, precision).
        tile_progress: called as ``tile_progress(phase, done, total)`` while tiles are computed
            (see :func:`~gancr.inference.tiling.tiled_forward`).
        settings: fields of :class:`StylizeOptions` given one by one (``alpha=0.5``, ``tile=512``).

    An image that needs more memory untiled than is free (estimated before, or found when an
    allocation fails) is stylised in tiles, with a warning that says so.

    Raises:
        GancrError: the generator outputs NaN or infinity (nothing to save).
    """
    opts = _options(options, settings, "stylize_tensor")
    single = image.dim() == 3
    x = image[None] if single else image
    if x.dim() != 4 or x.shape[1] != 3:
        raise GancrError(f"stylize: expected an image of shape (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    param = next(generator.parameters(), None)
    device = param.device if param is not None else x.device
    # a generator pads to a multiple of its reduction, but its layers need a few pixels at
    # the bottleneck too: pad small images to the size the builder checked (then crop back)
    h, w = x.shape[-2:]
    least = max(32, 2 * int(getattr(generator, "reduction", 1)))
    if h < least or w < least:
        x = torch.nn.functional.pad(x, (0, max(0, least - w), 0, max(0, least - h)), mode="replicate")
    module = StrengthBlend(generator, opts.alpha) if opts.alpha < 1.0 else generator
    precision = _precision(generator, x, opts)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    tile = opts.tile if opts.tile is not None else _tile_if_too_big(module, x, device)  # None: fits untiled
    y = None
    if tile is None:
        with autocast:
            y = _untiled(module, x, param, device)
        if y is None:  # tiles smaller than the image, so that each needs less than the whole did
            tile = AUTO_TILE if max(h, w) > AUTO_TILE else max(least, max(h, w) // 2)
            warnings.warn(f"stylize: a {w}x{h} image did not fit in memory untiled: stylising it in tiles of "
                          f"{tile} px (choose with --tile SIZE)", UserWarning, stacklevel=3)
    if y is None:
        with autocast:
            y = tiled_forward(module, x.to(torch.float32), tile, opts.overlap, stats_tiles=opts.stats_tiles,
                              progress=tile_progress)
    y = y[..., :h, :w].float().clamp(0, 1)
    if not bool(torch.isfinite(y).all()):
        raise GancrError("stylize: the generator outputs NaN or infinite values for this image (a diverged or "
                         "corrupt model); nothing was written for it")
    y = y.to(image.device)
    return y[0] if single else y


def _untiled(module: nn.Module, x: Tensor, param: Tensor | None, device: torch.device) -> Tensor | None:
    """``module(x)`` at once on ``device`` (in the weights' memory format); None when it ran out of memory."""
    try:
        xd = x.to(device, torch.float32)
        if param is not None and param.dim() == 4 and param.is_contiguous(memory_format=torch.channels_last) \
                and not param.is_contiguous():
            xd = xd.contiguous(memory_format=torch.channels_last)  # match the weights' layout
        return module(xd)
    except (MemoryError, RuntimeError) as exc:
        if not is_allocation_error(exc):
            raise
        return None


_MEASURED: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def _precision(generator: nn.Module, x: Tensor, opts: StylizeOptions) -> str:
    """The precision to run with: ``auto`` is fp32 on the CPU and when tiling, else measured once per generator."""
    if opts.precision != "auto":
        return opts.precision
    param = next(generator.parameters(), None)
    if param is None or param.device.type != "cuda" or opts.tile is not None:
        return "fp32"
    if generator not in _MEASURED:
        _MEASURED[generator] = fastest_precision(generator, x.to(param.device))
    return _MEASURED[generator]


#: The tile size used when an image turns out too big to stylise at once.
AUTO_TILE = 512
_PER_PIXEL: weakref.WeakKeyDictionary[nn.Module, float] = weakref.WeakKeyDictionary()


def _tile_if_too_big(module: nn.Module, x: Tensor, device: torch.device) -> int | None:
    """A tile size when ``x`` would need more memory untiled than is free, else None (with a note)."""
    free = available_memory(device)
    if free is None:
        return None
    b, _, h, w = x.shape
    image = 2 * b * 3 * h * w * 4  # the input and the output, float32
    if device.type == "cpu" and image > free:
        raise ResourceError(f"stylize: a {w}x{h} image needs {human_size(image)} for its input and output alone, "
                            f"more than the {human_size(free)} of free memory; make it smaller first")
    if module not in _PER_PIXEL:
        _PER_PIXEL[module] = activation_bytes(module, training=False)
    need = _PER_PIXEL[module] * b * h * w
    if need <= free - (image if device.type == "cpu" else 0):
        return None
    tile = AUTO_TILE
    while tile < 2048 and _PER_PIXEL[module] * b * (2 * tile) ** 2 * 2 <= free:
        tile *= 2
    warnings.warn(f"stylize: a {w}x{h} image needs about {human_size(need)} of memory untiled and "
                  f"{human_size(free)} is free: stylising it in tiles of {tile} px (choose with --tile SIZE)",
                  UserWarning, stacklevel=4)
    return tile


def fastest_precision(generator: nn.Module, image: Tensor, candidates: Sequence[str] = ("fp32", "bf16")) -> str:
    """The fastest of ``candidates`` for this generator at this image's size, measured.

    On CUDA, bf16 is not always faster (at batch 1 a generator can be bound by kernel
    launches, and some layers run slower in bf16), so it is timed rather than assumed. On
    the CPU the answer is fp32 without measuring.
    """
    param = next(generator.parameters(), None)
    if param is None or param.device.type != "cuda":
        return "fp32"
    x = image[None] if image.dim() == 3 else image
    best, best_time = "fp32", float("inf")
    for precision in candidates:
        for _ in range(2):  # warm-up (cuDNN autotuning)
            stylize_tensor(generator, x, precision=precision)
        torch.cuda.synchronize(param.device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(3):
            stylize_tensor(generator, x, precision=precision)
        end.record()
        end.synchronize()
        if start.elapsed_time(end) < best_time:
            best, best_time = precision, start.elapsed_time(end)
    return best


def _inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """(file, relative output path) for each image in the given files and folders.

    Output names are unique: ``a.jpg`` and ``a.png`` become ``a.png`` and ``a-1.png``, and a
    name taken that way is never given twice (``a-1.jpg`` then becomes ``a-1-1.png``).
    """
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in resolve_source(p):
                # resolve_source gives absolute paths with links kept (os.path.abspath)
                pairs.append((f, f.relative_to(os.path.abspath(p)).with_suffix(".png")))
        elif p.is_file():
            if not is_image_name(p.name):
                raise GancrError(f"stylize: {p} is not an image file (jpg, png, webp, bmp, tiff)")
            pairs.append((p, Path(p.stem + ".png")))
        else:
            raise GancrError(f"stylize: no such file or folder: {p}")
    natural = {_key(rel) for _, rel in pairs}
    taken: set[str] = set()
    out = []
    for f, rel in pairs:
        name, n = rel, 0
        while _key(name) in taken or (n > 0 and _key(name) in natural):
            n += 1
            name = rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
        taken.add(_key(name))
        out.append((f, name))
    return out


def _key(rel: Path) -> str:
    """Names that one folder cannot hold side by side on every file system (case-insensitive ones too)."""
    return rel.as_posix().casefold()


def _refuse_overwriting_inputs(items: list[tuple[Path, Path]], out_dir: Path) -> None:
    """An output that would replace one of the inputs is an error, before anything is written."""
    sources = {os.path.realpath(src): src for src, _ in items}
    for src, rel in items:
        target = os.path.realpath(out_dir / rel)
        if target in sources:
            raise GancrError(
                f"stylize: --out {out_dir} would overwrite the input {sources[target]} (the stylised {src.name} is "
                f"written as {out_dir / rel}); choose another output folder"
            )


class Stylized(list):
    """The files :func:`stylize` wrote (a list of paths), and ``skipped``: (file, reason) of the
    inputs it could not read (with ``skip_unreadable``)."""

    def __init__(self, written: list[Path] = (), skipped: list[tuple[Path, str]] = ()):  # type: ignore[assignment]
        super().__init__(written)
        self.skipped = list(skipped)


def stylize(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    out_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    generator: nn.Module | None = None,
    options: StylizeOptions | None = None,
    ema: bool = True,
    device: str | torch.device = "auto",
    skip_unreadable: bool = False,
    progress: bool = False,
    **settings: Any,
) -> Stylized:
    """Stylise image files and folders with a trained generator; write PNGs to ``out_dir``.

    Folders keep their layout; each output has its input's size, and an input's transparency
    is kept. For image tensors, use :func:`stylize_tensor`.

    Args:
        inputs: image files and folders.
        out_dir: where to write the images.
        checkpoint: a run directory, ``generator.safetensors`` or checkpoint file.
        generator: an already loaded generator (instead of ``checkpoint``).
        options: how to stylise (:class:`StylizeOptions`: strength, tiles, precision).
        ema: use the EMA weights when present.
        device: ``auto`` (CUDA when present, as every entry point: :func:`gancr.devices.resolve_device`),
            ``cpu``, ``cuda`` or ``cuda:N``.
        skip_unreadable: an image file that cannot be read is skipped with a
            :class:`~gancr.data.DataWarning` (and listed in the result's ``skipped``) instead of
            stopping the rest; an error still when no image could be read.
        progress: show progress over files, and over the tiles of a tiled image
            (:class:`gancr.progress.Progress`, on standard error).
        settings: fields of :class:`StylizeOptions` given one by one (``alpha=0.5``, ``tile=512``).

    Returns:
        The files written (:class:`Stylized`: a list of paths, with ``skipped``).

    Raises:
        GancrError: an output would overwrite an input; a file that cannot be read (unless
            ``skip_unreadable``); ``out_dir`` cannot be written (before any work).
    """
    opts = _options(options, settings, "stylize")
    if isinstance(inputs, Tensor):
        raise TypeError("stylize() writes image files; for an image tensor use gancr.stylize_tensor(generator, image)")
    dev = resolve_device(device, "stylize: device")
    check_output(out_dir, folder=True, what="--out")  # before loading anything
    items = _inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    _refuse_overwriting_inputs(items, Path(out_dir))
    if generator is None:
        if checkpoint is None:
            raise GancrError("stylize: give a checkpoint (a run directory or weights file) or a generator")
        generator = open_run(checkpoint).generator(ema=ema, device=dev)
    if dev.type == "cuda":
        generator = generator.to(dev, memory_format=torch.channels_last)
    result = Stylized()
    tile_progress = _tile_progress() if progress else None
    with Progress(len(items), "stylize", "image", enabled=progress) as shown:
        for src, rel in items:
            written = _stylize_file(generator, src, Path(out_dir) / rel, opts, tile_progress, skip_unreadable)
            if isinstance(written, Path):
                result.append(written)
            else:
                result.skipped.append((src, written))
            shown.update(1)
    if result.skipped and not result:
        raise DataError(f"stylize: none of the {len(result.skipped)} input image(s) could be read, e.g. "
                        f"{result.skipped[0][1]}")
    return result


def _stylize_file(generator: nn.Module, src: Path, out: Path, opts: StylizeOptions,
                  tile_progress: Callable[[str, int, int], None] | None, skip_unreadable: bool) -> Path | str:
    """Stylise one file into ``out`` (a PNG, its transparency kept); the path, or why it was skipped."""
    try:
        image = load_image(src)
        transparency = load_alpha(src)
    except DataError as exc:
        if not skip_unreadable:
            raise
        warnings.warn(f"skipping unreadable image: {exc}", DataWarning, stacklevel=3)
        return str(exc)
    y = stylize_tensor(generator, image, opts, tile_progress=tile_progress).cpu()
    if transparency is not None:
        y = torch.cat([y, transparency], 0)
    return save_image(y, out)


def _tile_progress() -> Callable[[str, int, int], None]:
    """Progress over the passes and tiles of a tiled image, one :class:`~gancr.progress.Progress` per phase."""
    shown: list[Progress] = []

    def update(phase: str, done: int, total: int) -> None:
        if not shown or shown[0].desc != f"tiles: {phase}" or shown[0].total != total:
            if shown:
                shown.pop().close()
            shown.append(Progress(total, f"tiles: {phase}", "pass" if phase == "statistics" else "tile"))
        if done > shown[0].n:
            shown[0].update(done - shown[0].n)
        if done >= total:
            shown.pop().close()

    return update
