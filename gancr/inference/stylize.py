"""Stylising images with a trained generator: any image size, strength, tiles, files in and out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gancr.data import is_image_name, load_alpha, load_image, resolve_source, save_image
from gancr.devices import resolve_device
from gancr.errors import GancrError
from gancr.inference.load import open_run
from gancr.inference.strength import StrengthBlend, check_alpha
from gancr.inference.tiling import tiled_forward
from gancr.progress import Progress

__all__ = ["fastest_precision", "stylize", "stylize_tensor"]


@torch.no_grad()
def stylize_tensor(
    generator: nn.Module,
    image: Tensor,
    *,
    alpha: float = 1.0,
    tile: int | None = None,
    overlap: int | None = None,
    stats_tiles: int | None = None,
    precision: str = "fp32",
    content_net: nn.Module | None = None,
) -> Tensor:
    """``G(image)`` for ``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1], any size; same shape out.

    Args:
        generator: a generator (:func:`~gancr.inference.load_generator`).
        image: the image(s).
        alpha: strength, from 0 (the input itself) to 1 (full style; the default):
            ``x + alpha * (G(x) - x)``, see :mod:`gancr.inference.strength`.
        tile: run in tiles of this many pixels (bounded memory for big images; the output
            then stays on the input's device); see :mod:`gancr.inference.tiling`.
        overlap: least overlap of neighbouring tiles (default: an eighth of the tile, at least 32,
            at most a quarter).
        stats_tiles: when tiling, estimate instance/group-norm statistics from this many
            tiles spread over the image (faster); default 0: measure them over all tiles,
            which gives the untiled result.
        precision: ``fp32``, or ``bf16`` (autocast; on CUDA it may or may not be faster for a
            given model: :func:`fastest_precision` measures it).
        content_net: ignored (gancr 0.1 blended alpha with it), with a ``DeprecationWarning``.
    """
    alpha = check_alpha(alpha)
    _ignore_content_net(content_net)
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
    module = generator
    if alpha < 1.0:
        module = StrengthBlend(generator, alpha)
    if precision not in ("fp32", "bf16"):
        raise GancrError(f"stylize: precision must be fp32 or bf16, got {precision!r}")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    if tile is not None:
        with autocast:
            y = tiled_forward(module, x.to(torch.float32), tile, overlap, stats_tiles=stats_tiles)
    else:
        x = x.to(device, torch.float32)
        if param is not None and param.dim() == 4 and param.is_contiguous(memory_format=torch.channels_last) \
                and not param.is_contiguous():
            x = x.contiguous(memory_format=torch.channels_last)  # match the weights' layout
        with autocast:
            y = module(x)
    y = y[..., :h, :w].float().clamp(0, 1)
    return y[0] if single else y


def _ignore_content_net(content_net: nn.Module | None) -> None:
    if content_net is not None:
        import warnings

        warnings.warn(
            "stylize: content_net= is ignored since gancr 0.2: alpha blends the input photograph with G(x)",
            DeprecationWarning,
            stacklevel=3,
        )


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
    """(file, relative output path) for each image in the given files and folders."""
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
    taken: dict[Path, int] = {}
    out = []
    for f, rel in pairs:  # two inputs with one name: photo.png, photo-1.png
        n = taken.get(rel, 0)
        taken[rel] = n + 1
        out.append((f, rel if n == 0 else rel.with_name(f"{rel.stem}-{n}{rel.suffix}")))
    return out


def stylize(
    inputs: Tensor | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    generator: nn.Module | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    ema: bool = True,
    device: str = "auto",
    alpha: float = 1.0,
    tile: int | None = None,
    overlap: int | None = None,
    stats_tiles: int | None = None,
    precision: str = "auto",
    progress: bool = False,
    content_net: nn.Module | None = None,
) -> Tensor | list[Path]:
    """Stylise a tensor, or image files and folders, with a trained generator.

    Args:
        inputs: an image tensor ``(3, H, W)``/``(B, 3, H, W)`` in [0, 1] (returns a tensor),
            or image files and folders (writes PNGs to ``out_dir``, returns their paths;
            folders keep their layout; the output has the input's size, and an input's
            transparency is kept).
        checkpoint: a run directory, ``generator.safetensors`` or checkpoint file.
        generator: an already loaded generator (instead of ``checkpoint``).
        out_dir: where to write the images (files and folders only).
        ema: use the EMA weights when present.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        alpha: strength from 0 (the input itself) to 1 (full style, the default).
        tile: stylise in tiles of this many pixels (bounded memory), see :func:`stylize_tensor`.
        overlap: least overlap between tiles, see :func:`stylize_tensor`.
        stats_tiles: tiles to estimate normalisation statistics from, see :func:`stylize_tensor`.
        precision: ``fp32``, ``bf16``, or ``auto``: on CUDA the faster of the two for this
            model, measured on the first image (channels-last weights there); fp32 on the CPU.
        progress: show progress over files (:class:`gancr.progress.Progress`, on standard error).
        content_net: ignored (gancr 0.1 blended alpha with it), with a ``DeprecationWarning``.
    """
    alpha = check_alpha(alpha)
    dev = resolve_device(device)
    run = None
    if generator is None:
        if checkpoint is None:
            raise GancrError("stylize: give a checkpoint (a run directory or weights file) or a generator")
        run = open_run(checkpoint)
        generator = run.generator(ema=ema, device=dev)
    _ignore_content_net(content_net)
    if precision not in ("auto", "fp32", "bf16"):
        raise GancrError(f"stylize: precision must be auto, fp32 or bf16, got {precision!r}")
    if dev.type == "cuda":
        generator = generator.to(dev, memory_format=torch.channels_last)
    options: dict[str, Any] = dict(
        alpha=alpha, tile=tile, overlap=overlap, stats_tiles=stats_tiles
    )

    chosen: list[str] = [] if precision == "auto" else [precision]

    def pick(image: Tensor) -> str:
        """The precision to run with: measured once, on the first image, for ``auto``."""
        if not chosen:
            chosen.append(fastest_precision(generator, image.to(dev)) if tile is None else "fp32")
        return chosen[0]

    if isinstance(inputs, Tensor):
        return stylize_tensor(generator, inputs, precision=pick(inputs), **options)
    if out_dir is None:
        raise GancrError("stylize: give out_dir for file inputs")
    items = _inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    written = []
    with Progress(len(items), "stylize", "image", enabled=progress) as shown:
        for src, rel in items:
            image = load_image(src)
            y = stylize_tensor(generator, image, precision=pick(image), **options).cpu()
            transparency = load_alpha(src)
            if transparency is not None:
                y = torch.cat([y, transparency], 0)
            written.append(save_image(y, Path(out_dir) / rel))
            shown.update(1)
    return written
