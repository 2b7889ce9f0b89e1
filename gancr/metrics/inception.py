r"""The standard FID Inception, from a local file: the network whose features published FID and KID use.

It is the TensorFlow Inception-v3 of 2015-12-05 ported to PyTorch, the file
``pt_inception-2015-12-05-6726825d.pth`` of pytorch-fid (torch-fidelity ships the same
file as ``weights-inception-2015-12-05-6726825d.pth``; both names carry the first digits of
its SHA-256). gancr runs it through torch-fidelity's ``FeatureExtractorInceptionV3`` — the
implementation torchmetrics uses too, with TensorFlow's resize to 299 x 299 — on 8-bit images,
as those tools do, and takes the 2048-d pool features. Nothing is downloaded: the file must be
on this machine (:func:`fid_inception_file`). Needs the ``metrics`` extra (torch-fidelity).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gancr.errors import GancrError
from gancr.metrics._checks import check_images
from gancr.metrics.features import WeightsUnavailable
from gancr.storage.integrity import file_sha256
from gancr.storage.pretrained import hub_checkpoints_dir
from gancr.storage.reader import read_state_dict

__all__ = [
    "FID_INCEPTION_FILES",
    "FID_INCEPTION_SHA256",
    "FID_INCEPTION_URL",
    "FIDInception",
    "fid_inception_file",
    "inception_features",
    "inception_weights_file",
]

#: The file names under which the FID Inception is published (pytorch-fid's, torch-fidelity's).
FID_INCEPTION_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")

#: The first digits of the SHA-256 of the published file (torch hub's naming convention).
FID_INCEPTION_SHA256 = "6726825d"

#: Where to download it on a connected machine (pytorch-fid's release).
FID_INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"

#: Keys every FID Inception state dict has: its first and last convolutions and its classifier.
_LANDMARKS = ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight")

#: The torch-fidelity feature extractor's name for this network.
_EXTRACTOR = "inception-v3-compat"


def fid_inception_file(weights: str | os.PathLike[str] | None = None) -> Path:
    """The FID Inception file to load: ``weights``, else one of :data:`FID_INCEPTION_FILES` in
    torch hub's cache (``$TORCH_HOME/hub/checkpoints``). Never touches the network.

    Raises:
        WeightsUnavailable: no such file; the message says where to get it.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"FID Inception weights: no such file {str(path)!r}. Give the path of "
                f"{FID_INCEPTION_FILES[0]} (download it on a connected machine from {FID_INCEPTION_URL})"
            )
        return path
    cache = hub_checkpoints_dir()
    for name in FID_INCEPTION_FILES:
        if (cache / name).is_file():
            return cache / name
    raise WeightsUnavailable(
        f"the FID Inception weights are not on this machine (looked for {' or '.join(FID_INCEPTION_FILES)} "
        f"in {cache}), and gancr does not download them. Download {FID_INCEPTION_URL} on a connected "
        "machine and put it there, or give its path: gancr eval --inception-weights FILE "
        "(evaluate(..., inception_weights=FILE) in Python)"
    )


class FIDInception:
    """The FID Inception, loaded once: ``features(images)`` gives its 2048-d pool features.

    Args:
        weights: the file (default: found by :func:`fid_inception_file`); a ``torch.save``
            state dict (read with ``weights_only=True``) or ``.safetensors``.
        device: where it runs.

    Attributes:
        info: what the features are: ``features``, ``weights``, ``sha256``, ``standard``
            (whether the file is the published one, by its SHA-256), ``label``.

    Raises:
        WeightsUnavailable: the file is not there.
        GancrError: torch-fidelity is not installed, or the file is not this network's state
            dict (its missing and unexpected keys are named).
    """

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"):
        path = fid_inception_file(weights)
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise GancrError(
                "the FID Inception runs through torch-fidelity, which is not installed: "
                "pip install 'gancr[metrics]'"
            ) from None
        state = read_state_dict(path, "FID Inception weights")
        missing = [k for k in _LANDMARKS if k not in state]
        if missing:  # before building the network: a file of another network entirely
            raise GancrError(f"FID Inception weights: {path} is not the FID Inception's state dict: "
                             f"Missing key(s) {', '.join(missing)} (and maybe others)")
        fc = state.get("fc.weight")
        if isinstance(fc, Tensor) and fc.shape[0] == 1000:
            raise GancrError(
                f"FID Inception weights: {path} has 1000 classes: torchvision's ImageNet inception_v3, "
                f"not the FID Inception (1008 classes, {FID_INCEPTION_FILES[0]})"
            )
        buffer = io.BytesIO()  # torch-fidelity reads this with torch.load: only the checked tensors are in it
        torch.save(state, buffer)
        buffer.seek(0)
        try:
            self.model = FeatureExtractorInceptionV3(_EXTRACTOR, ["2048"], feature_extractor_weights_path=buffer)
        except RuntimeError as exc:  # load_state_dict: missing or unexpected keys, other shapes
            detail = " ".join(str(exc).split())
            raise GancrError(f"FID Inception weights: {path} is not the FID Inception's state dict: {detail}") from None
        self.model.to(device)
        self.device = torch.device(device)
        sha = file_sha256(path)
        standard = sha.startswith(FID_INCEPTION_SHA256)
        self.info: dict[str, Any] = {
            "features": "fid_inception/pool3",
            "pretrained": True,
            "weights": str(path),
            "sha256": sha,
            "standard": standard,
            "label": "FID Inception pt_inception-2015-12-05" if standard
            else f"Inception of FID layout, NOT the standard file (sha256 {sha[:8]})",
        }

    @torch.no_grad()
    def features(self, images: Tensor | list[Tensor], batch_size: int = 32) -> Tensor:
        """Pool features ``(N, 2048)`` of images in [0, 1]: a batch ``(N, 3, H, W)``, or a list of
        ``(3, H, W)`` images of any sizes (each resized to 299 x 299 by the network, as torch-fidelity does)."""
        items = [images[i] for i in range(images.shape[0])] if isinstance(images, Tensor) else list(images)
        out: list[Tensor] = []
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(items):
            groups.setdefault(tuple(image.shape), []).append(i)
        result: list[Tensor | None] = [None] * len(items)
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.stack([items[i] for i in chunk]).to(self.device)
                pixels = (batch.float().clamp(0, 1) * 255).round().to(torch.uint8)
                (feats,) = self.model(pixels)
                for i, f in zip(chunk, feats.float()):
                    result[i] = f
        out = [r for r in result if r is not None]
        if not out:
            return torch.zeros(0, 2048)
        return torch.stack(out).cpu()


def inception_weights_file(weights: str | os.PathLike[str] | None) -> Path:
    """The FID Inception file to load (:func:`fid_inception_file`), or :class:`WeightsUnavailable`."""
    return fid_inception_file(weights)


def inception_features(
    images: Tensor, weights: str | os.PathLike[str] | None = None, batch_size: int = 32
) -> tuple[Tensor, dict[str, Any]]:
    r"""FID Inception pool features (2048-d) of images, as published FID and KID use them.

    Loads the network (:class:`FIDInception`) for this call; to score several batches, make
    one :class:`FIDInception` and call its ``features`` instead.

    Args:
        images: :math:`(N, 3, H, W)` in :math:`[0, 1]`, any size (resized to 299 x 299 by the
            network, as torch-fidelity does, after rounding to 8 bits).
        weights: the file, or ``None`` to find it in torch hub's cache (:func:`fid_inception_file`).
        batch_size: images per forward pass.

    Returns:
        ``(features, info)``: features :math:`(N, 2048)` float32 on the CPU, and what they are
        (``FIDInception.info``).

    Raises:
        WeightsUnavailable: the file is not on this machine.
        GancrError: the file is not the FID Inception's state dict, or torch-fidelity is missing.
    """
    check_images("inception_features", images)
    network = FIDInception(weights, images.device)
    return network.features(images, batch_size=batch_size), dict(network.info)
