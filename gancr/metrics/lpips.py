r"""LPIPS, the learned perceptual distance (Zhang et al. 2018), with its backbone from a local file.

The ``lpips`` package ships the learned linear heads (``weights/v0.1/alex.pth``); its AlexNet
backbone is torchvision's ImageNet AlexNet, which gancr never downloads: the file
``alexnet-owt-7be5be79.pth`` must be in torch hub's cache or given (:func:`lpips_backbone_file`).
Without it, evaluation falls back to :func:`gancr.metrics.feature_distance` (the same
unit-normalised distance without learned weights), and says so. Needs the ``metrics`` extra.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gancr.errors import GancrError
from gancr.metrics.features import WeightsUnavailable
from gancr.storage.pretrained import hub_checkpoints_dir
from gancr.storage.reader import read_state_dict

__all__ = ["LPIPS_BACKBONE_FILE", "LPIPS_BACKBONE_URL", "LPIPS", "lpips_backbone_file"]

#: torchvision's ImageNet AlexNet, LPIPS's backbone (torch hub's cache name).
LPIPS_BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
LPIPS_BACKBONE_URL = f"https://download.pytorch.org/models/{LPIPS_BACKBONE_FILE}"


def lpips_backbone_file(weights: str | os.PathLike[str] | None = None) -> Path:
    """The AlexNet file to load: ``weights``, else :data:`LPIPS_BACKBONE_FILE` in torch hub's cache.

    Raises:
        WeightsUnavailable: no such file; the message says where to get it.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"LPIPS backbone weights: no such file {str(path)!r} "
                                     f"(torchvision's AlexNet, {LPIPS_BACKBONE_FILE})")
        return path
    path = hub_checkpoints_dir() / LPIPS_BACKBONE_FILE
    if not path.is_file():
        raise WeightsUnavailable(
            f"LPIPS needs torchvision's AlexNet weights, which are not on this machine ({path}); gancr "
            f"does not download them. Download {LPIPS_BACKBONE_URL} on a connected machine and put it "
            "there, or give its path: gancr eval --lpips-weights FILE (evaluate(..., lpips_weights=FILE))"
        )
    return path


class LPIPS:
    """LPIPS (AlexNet, v0.1), loaded once; ``distance(x, y)`` per image pair.

    Args:
        weights: torchvision's AlexNet state dict (default: found by :func:`lpips_backbone_file`).
        device: where it runs.

    Raises:
        WeightsUnavailable: the backbone file is not there.
        GancrError: ``lpips`` is not installed, or the file is not AlexNet's state dict.
    """

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"):
        path = lpips_backbone_file(weights)
        try:
            import lpips
        except ImportError:
            raise GancrError("LPIPS needs the lpips package, which is not installed: pip install 'gancr[metrics]'") from None
        state = read_state_dict(path, "LPIPS backbone weights")
        with warnings.catch_warnings():  # lpips asks torchvision with its old `pretrained=` argument
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)  # learned heads from the wheel
        backbone = model.net
        wanted = {}
        for key in backbone.state_dict():  # slice{k}.{i}.weight <- torchvision's features.{i}.weight
            m = re.fullmatch(r"slice\d+\.(\d+)\.(\w+)", key)
            if m is None:
                continue
            wanted[key] = f"features.{m[1]}.{m[2]}"
        missing = [src for src in wanted.values() if src not in state]
        if missing:
            raise GancrError(
                f"LPIPS backbone weights: {path} is not torchvision's AlexNet state dict "
                f"(missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''})"
            )
        try:
            backbone.load_state_dict({k: state[src] for k, src in wanted.items()}, strict=True)
        except RuntimeError as exc:
            raise GancrError(f"LPIPS backbone weights: {path}: {' '.join(str(exc).split())}") from None
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.info: dict[str, Any] = {
            "features": "lpips/alex",
            "pretrained": True,
            "weights": str(path),
            "description": "LPIPS v0.1 (AlexNet backbone, learned linear heads of the lpips package)",
            "label": "LPIPS (alex, learned)",
        }

    @torch.no_grad()
    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS of each pair: ``x``, ``y`` are ``(B, 3, H, W)`` in [0, 1]; returns ``(B,)``."""
        d = self.model(x.to(self.device).float(), y.to(self.device).float(), normalize=True)
        return d.flatten().cpu()
