"""Encoders: ``(B, 3, H, W)`` images in [0, 1] to a list of feature maps, deepest last.

Each encoder states its outputs in ``feature_info`` (channels, reduction, name), the
contract that lets a neck and a decoder be sized for any backbone.
"""

from __future__ import annotations

import difflib
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from gancr.components.base import FeatureInfo, Freezable, Norm, norm_layer
from gancr.errors import BuildError, GancrError
from gancr.registry import ComponentParams, Registry
from gancr.storage.pretrained import IMAGENET, Preprocessing, Pretrained, load_pretrained, vgg_features

__all__ = ["VGG19Encoder", "TimmEncoder", "ConvEncoder", "VGG19_LAYERS", "register"]

# Names of torchvision's vgg19().features, in order: conv/relu per block, a pool after each.
_VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG19_NAMES: tuple[str, ...] = tuple(
    name
    for block, convs in enumerate(_VGG19_BLOCKS, start=1)
    for name in (
        *(f"{kind}{block}_{i}" for i in range(1, convs + 1) for kind in ("conv", "relu")),
        f"pool{block}",
    )
)
VGG19_LAYERS: tuple[str, ...] = tuple(n for n in VGG19_NAMES if n.startswith("relu"))


def _vgg19_features(count: int) -> nn.Sequential:
    """The first ``count`` modules of torchvision's ``vgg19().features`` (same indices and keys)."""
    modules: list[nn.Module] = []
    channels = 3
    for name in VGG19_NAMES[:count]:
        if name.startswith("conv"):
            block = int(name[4])
            out = 64 * 2 ** min(block - 1, 3)
            modules.append(nn.Conv2d(channels, out, 3, padding=1))
            channels = out
        elif name.startswith("relu"):
            modules.append(nn.ReLU(inplace=True))
        else:
            modules.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*modules)


class _Normalize(nn.Module):
    """An image in [0, 1] RGB as the weights expect it (:class:`~gancr.storage.pretrained.Preprocessing`)."""

    def __init__(self, preprocessing: Preprocessing):
        super().__init__()
        self.bgr = preprocessing.channels == "BGR"
        self.scale = preprocessing.scale
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.bgr:
            x = x.flip(1)
        if self.scale != 1.0:
            x = x * self.scale
        return (x - self.mean) / self.std


# ----------------------------------------------------------------------------------------
# vgg19
# ----------------------------------------------------------------------------------------


def _load_vgg_features(features: nn.Sequential, found: Pretrained, last: int) -> None:
    """Load weights in torchvision's VGG layout into the first ``last + 1`` feature layers."""
    missing, unexpected = features.load_state_dict(vgg_features(found.state_dict, last), strict=False)
    if missing or unexpected:
        raise BuildError(
            f"vgg19 weights {found.origin} do not match torchvision's vgg19 features "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


class VGG19Params(ComponentParams):
    layer: Literal[VGG19_LAYERS] = Field(  # type: ignore[valid-type]
        "relu4_1", description="deepest layer; the relu*_1 layers before it are returned too"
    )
    pretrained: bool = Field(False, description="torchvision's ImageNet weights (downloads)")
    weights: str | None = Field(None, description="a local weight file (.pth or .safetensors)")
    freeze: bool = Field(False, description="keep the weights fixed")
    normalize: bool = Field(True, description="apply ImageNet mean/std to the input")


class VGG19Encoder(Freezable):
    """VGG19 (torchvision) up to a named layer such as ``relu4_1``.

    Returns the ``relu{k}_1`` features of the blocks before the chosen layer's block, then
    the chosen layer (reductions 1, 2, 4, 8, 16 for blocks 1..5).

    Example:
        >>> enc = VGG19Encoder(layer="relu2_1")
        >>> [f.shape[1] for f in enc(torch.rand(1, 3, 32, 32))]
        [64, 128]
    """

    def __init__(
        self,
        layer: str = "relu4_1",
        pretrained: bool = False,
        weights: str | None = None,
        freeze: bool = False,
        normalize: bool = True,
    ):
        super().__init__()
        if layer not in VGG19_LAYERS:
            raise ValueError(f"unknown VGG19 layer {layer!r}; choose one of {', '.join(VGG19_LAYERS)}")
        stop = VGG19_NAMES.index(layer)
        features = _vgg19_features(stop + 1)
        found = load_pretrained("torchvision", "vgg19", file=weights) if pretrained or weights is not None else None
        if found is not None:
            _load_vgg_features(features, found, stop)
        self.layers = features
        preprocessing = (found.preprocessing if found is not None else None) or IMAGENET
        self.normalize = _Normalize(preprocessing) if normalize else nn.Identity()
        block = int(layer[4])
        self.taps: list[int] = [VGG19_NAMES.index(f"relu{b}_1") for b in range(1, block)] + [stop]
        self.feature_info = [
            FeatureInfo(
                channels=64 * 2 ** min(int(VGG19_NAMES[i][4]) - 1, 3),
                reduction=2 ** (int(VGG19_NAMES[i][4]) - 1),
                name=VGG19_NAMES[i],
            )
            for i in self.taps
        ]
        self.pretrained = pretrained or weights is not None
        if freeze:
            self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        h = self.normalize(x)
        taps = set(self.taps)
        for i, module in enumerate(self.layers):
            h = module(h)
            if i in taps:
                out.append(h)
        return out


# ----------------------------------------------------------------------------------------
# timm
# ----------------------------------------------------------------------------------------


class TimmParams(ComponentParams):
    model_name: str = Field("resnet18", description="any timm model name (timm.list_models())")
    pretrained: bool = Field(False, description="timm's pretrained weights (downloads)")
    weights: str | None = Field(None, description="a local weight file for the timm model")
    features_only: bool = Field(True, description="multi-scale features (else the last map only)")
    out_indices: list[int] | None = Field(None, description="which feature levels (default: all)")
    freeze: bool = Field(False, description="keep the backbone's weights fixed (train only what follows it)")
    normalize: bool = Field(True, description="apply the model's mean/std to the input")


def _check_timm_weights(model_name: str, state: dict[str, Tensor], path: str) -> None:
    """The file must hold this network's weights: the same names and shapes (the classifier may be
    missing). timm itself loads a foreign file with a warning and random weights."""
    import timm

    model = timm.create_model(model_name, pretrained=False)
    expected = model.state_dict()
    classifiers = (model.pretrained_cfg or {}).get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    optional = {k for k in expected if any(k.startswith(c + ".") for c in classifiers)}
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else "")

        problems = [f"missing {few(missing)}" if missing else "", f"unexpected {few(unexpected)}" if unexpected else "",
                    f"other shapes {few(wrong)}" if wrong else ""]
        raise BuildError(
            f"timm {model_name} weights {path} do not belong to {model_name} ("
            + "; ".join(p for p in problems if p) + "); give a file saved from timm.create_model("
            f"{model_name!r}).state_dict()"
        )


def _create_timm(model_name: str, found: Pretrained | None, **kwargs: object) -> nn.Module:
    """``timm.create_model``, with ``found``'s state dict as its pretrained weights (timm's
    ``load_pretrained`` adapts them: its filters, classifier, input channels)."""
    import timm

    if found is not None:
        kwargs["pretrained_cfg_overlay"] = {"state_dict": found.state_dict, "source": "timm"}
    try:
        model = timm.create_model(model_name, pretrained=found is not None, **kwargs)
    except GancrError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        raise BuildError(f"timm could not create {model_name!r}: {exc}") from None
    for module in model.modules():  # timm keeps its config, which would keep the weights alive twice
        cfg = getattr(module, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)
    return model


class TimmEncoder(Freezable):
    """Any timm backbone as an encoder, through timm's ``features_only`` and ``feature_info``."""

    def __init__(
        self,
        model_name: str = "resnet18",
        pretrained: bool = False,
        weights: str | None = None,
        features_only: bool = True,
        out_indices: list[int] | None = None,
        freeze: bool = False,
        normalize: bool = True,
    ):
        super().__init__()
        import timm

        if not timm.is_model(model_name):
            close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise BuildError(f"timm has no model {model_name!r}.{hint}")
        kwargs: dict[str, object] = {}
        if features_only:
            kwargs["features_only"] = True
            if out_indices is not None:
                kwargs["out_indices"] = tuple(out_indices)
        found = load_pretrained("timm", model_name, file=weights) if pretrained or weights is not None else None
        if weights is not None and found is not None:
            _check_timm_weights(model_name, found.state_dict, weights)
        model = _create_timm(model_name, found, **kwargs)
        self.model = model
        self.features_only = features_only
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        preprocessing = (found.preprocessing if found is not None else None) or Preprocessing(
            tuple(cfg.get("mean", IMAGENET.mean)), tuple(cfg.get("std", IMAGENET.std)))
        self.normalize = _Normalize(preprocessing) if normalize else nn.Identity()
        if features_only:
            fi = model.feature_info
            self.feature_info = [
                FeatureInfo(c, r, n) for c, r, n in zip(fi.channels(), fi.reduction(), fi.module_name())
            ]
        else:
            last = (getattr(model, "feature_info", None) or [{}])[-1]
            self.feature_info = [
                FeatureInfo(model.num_features, int(last.get("reduction", 32)), last.get("module", "features"))
            ]
        self.pretrained = pretrained or weights is not None
        if freeze:
            self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.normalize(x)
        if self.features_only:
            return list(self.model(x))
        return [self.model.forward_features(x)]


# ----------------------------------------------------------------------------------------
# conv
# ----------------------------------------------------------------------------------------


class ConvParams(ComponentParams):
    widths: list[int] = Field(
        [32, 64, 128], min_length=1, description="channels per level; each level after the first halves the size"
    )
    norm: Norm = Field("instance", description="normalisation after each convolution: instance, batch or none")
    freeze: bool = Field(False, description="keep the weights fixed")

    @field_validator("widths")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(w <= 0 or w > 8192 for w in v):
            raise ValueError(f"widths must be between 1 and 8192, got {v}")
        if len(v) > 12:
            raise ValueError(f"at most 12 levels (each halves the image), got {len(v)}")
        return v


class ConvEncoder(Freezable):
    """A from-scratch strided conv encoder (CycleGAN's c7s1-k, then stride-2 3x3 convs).

    Example:
        >>> enc = ConvEncoder(widths=[8, 16])
        >>> [tuple(f.shape) for f in enc(torch.rand(1, 3, 32, 32))]
        [(1, 8, 32, 32), (1, 16, 16, 16)]
    """

    def __init__(self, widths: list[int] = (32, 64, 128), norm: str = "instance", freeze: bool = False):  # type: ignore[assignment]
        super().__init__()
        widths = list(widths)
        levels = [
            nn.Sequential(
                nn.ReflectionPad2d(3),
                nn.Conv2d(3, widths[0], 7, bias=norm != "batch"),
                norm_layer(norm, widths[0]),
                nn.ReLU(inplace=True),
            )
        ]
        for cin, cout in zip(widths, widths[1:]):
            levels.append(
                nn.Sequential(
                    nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=norm != "batch"),
                    norm_layer(norm, cout),
                    nn.ReLU(inplace=True),
                )
            )
        self.levels = nn.ModuleList(levels)
        self.feature_info = [FeatureInfo(w, 2**i, f"level{i}") for i, w in enumerate(widths)]
        self.pretrained = False
        if freeze:
            self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


def register(registry: Registry) -> None:
    registry.register("encoder", "vgg19", VGG19Encoder, params=VGG19Params)
    registry.register("encoder", "timm", TimmEncoder, params=TimmParams)
    registry.register("encoder", "conv", ConvEncoder, params=ConvParams)
