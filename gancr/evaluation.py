r"""Evaluating a trained generator: every metric of :mod:`gancr.metrics` on image folders.

:func:`evaluate` runs the generator on the content images and computes

- **content retention** between each input ``x`` and its output ``y = G(x)``: SSIM, the F1
  of Canny edges, the correlation of Sobel magnitudes, the perceptual distance in a chosen
  encoder's features, and the content net's feature distance (when the run trained one);
- **style closeness** between the set of outputs and the style set: Gram-matrix distance,
  Lab colour-histogram distance, KID and FID (in Inception-v3's pool features when
  torchvision's weights are on this machine, otherwise in the chosen encoder's pooled
  features);
- **paired references** (optional; matched to content images by file stem): PSNR, SSIM and
  edge F1 of each output against its reference.

The result says which features every metric used and whether they were pretrained.

Image sizes
-----------
Any sizes work, mixed in one folder.

- Each content image is first fitted so that its longer side is at most ``max_size`` pixels
  (antialiased bilinear; ``None`` keeps the size); the generator runs at that size, and the
  pixel metrics (SSIM, edge F1, Sobel correlation, PSNR) and the content net's distance are
  computed there. Style images are fitted the same way; a reference is resized to its
  output's size (their aspect ratios must agree within 2 %).
- Feature metrics see square views resized to ``feature_size`` x ``feature_size`` (default
  224; the aspect ratio is not kept, as with Inception's customary 299 x 299): the
  perceptual distance compares the views of ``x`` and ``y``; the Gram and Lab distances use
  the whole-image view of every image; KID and FID use ``views`` per image — the whole image
  and, with ``views=5`` (the default), its four quadrants too — so that the few images of a
  small set still give enough feature vectors (they then measure local texture statistics
  as well as the global look). With Inception, the KID/FID views are made at 299 x 299, its input size.

Encoders with random weights
----------------------------
The encoder spec (default ``{name: vgg19, layer: relu3_1}``) is built with random weights
unless it says ``pretrained: true`` (torchvision or timm download them when online) or
``weights: <file>``. Random weights are drawn from a fixed seed (:data:`ENCODER_SEED`), so
values are comparable between evaluations with the same encoder spec, but they measure
random projections, not perception; the result marks them ``"pretrained": false``.

Example:
    >>> result = evaluate("runs/quick", "builtin:holdout", "builtin:cartoon")  # doctest: +SKIP
    >>> result["metrics"]["content/ssim"]["value"]  # doctest: +SKIP
    0.62
    >>> print(format_table(result))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from gancr.errors import GancrError

if TYPE_CHECKING:  # torch, kornia and the metrics load when an evaluation runs, not on import
    import torch
    from torch import Tensor, nn

__all__ = [
    "DEFAULT_ENCODER",
    "ENCODER_SEED",
    "METRICS",
    "MetricSpec",
    "evaluate",
    "format_table",
    "markdown_table",
    "metric_docs_markdown",
    "table_rows",
    "parse_encoder",
    "write_json",
]

#: The encoder of the perceptual, Gram and (fallback) KID/FID features when none is named.
DEFAULT_ENCODER: dict[str, Any] = {"name": "vgg19", "layer": "relu3_1"}

#: The seed of an encoder's random weights (so random-feature metrics are repeatable).
ENCODER_SEED = 0

#: Side of Inception-v3's input views (KID/FID views are made at this size for it).
INCEPTION_SIZE = 299

#: Smallest image side the pixel metrics accept (SSIM's 11-tap window needs more than 5).
MIN_SIDE = 16


@dataclass(frozen=True)
class MetricSpec:
    """One row of the evaluation table.

    Attributes:
        key: ``group/name``, the key in ``result["metrics"]``.
        metric: the :data:`gancr.metrics.METRIC_DOCS` entry that explains it.
        better: ``"higher"`` or ``"lower"``.
        features: which entry of ``result["features"]`` it used (``"pixels"`` for none).
        summary: one line for tables.
    """

    key: str
    metric: str
    better: str
    features: str
    summary: str


#: Every metric :func:`evaluate` reports, in table order.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("content/ssim", "ssim", "higher", "pixels", "SSIM(x, G(x))"),
    MetricSpec("content/edge_f1", "edge_f1", "higher", "pixels", "F1 of Canny edges, x vs G(x)"),
    MetricSpec("content/sobel_correlation", "sobel_correlation", "higher", "pixels",
               "correlation of Sobel magnitudes, x vs G(x)"),
    MetricSpec("content/perceptual_distance", "feature_distance", "lower", "perceptual",
               "feature distance, x vs G(x), chosen encoder"),
    MetricSpec("content/content_net_distance", "feature_distance", "lower", "content_net",
               "feature distance, x vs G(x), the run's content net"),
    MetricSpec("style/gram_distance", "gram_distance", "lower", "perceptual",
               "Gram-matrix distance, outputs vs style set"),
    MetricSpec("style/lab_histogram_distance", "lab_histogram_distance", "lower", "pixels",
               "Lab colour-histogram EMD, outputs vs style set"),
    MetricSpec("style/kid", "kid", "lower", "kid_fid", "KID, outputs vs style set"),
    MetricSpec("style/fid", "fid", "lower", "kid_fid", "FID, outputs vs style set"),
    MetricSpec("reference/psnr", "psnr", "higher", "pixels", "PSNR(G(x), reference)"),
    MetricSpec("reference/ssim", "ssim", "higher", "pixels", "SSIM(G(x), reference)"),
    MetricSpec("reference/edge_f1", "edge_f1", "higher", "pixels", "edge F1, G(x) vs reference"),
)

_BY_KEY = {m.key: m for m in METRICS}


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------

ImageSet = Any  # a source (folder, file, builtin:NAME, list), a (N,3,H,W) tensor, a list or a mapping


@dataclass
class _Images:
    """Named images, loaded lazily (a file path or a tensor per name), and a description."""

    names: list[str]
    items: list[Any]
    label: str

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> Tensor:
        from torch import Tensor

        item = self.items[i]
        if isinstance(item, Tensor):
            return item
        from gancr.data import load_image

        return load_image(item)


def _check_tensor_image(t: Any, where: str) -> Tensor:
    from torch import Tensor

    if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[0] != 3 or not t.is_floating_point():
        got = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
        raise GancrError(f"evaluate: {where} must be a float image tensor of shape (3, H, W) in [0, 1], got {got}")
    return t.detach().float().clamp(0, 1)


def _image_set(images: ImageSet, what: str) -> _Images:
    """Names and loaders for a source, a batch tensor, a list of tensors or a name -> tensor mapping."""
    from torch import Tensor

    if isinstance(images, Tensor):
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4:
            raise GancrError(f"evaluate: {what} must be (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
        items = [_check_tensor_image(t, f"{what}[{i}]") for i, t in enumerate(images)]
        return _Images([f"{i:04d}" for i in range(len(items))], items, f"{len(items)} tensors")
    if isinstance(images, Mapping):
        names = [str(k) for k in images]
        items = [_check_tensor_image(v, f"{what}[{k!r}]") for k, v in images.items()]
        return _Images(names, items, f"{len(items)} tensors")
    if isinstance(images, Sequence) and not isinstance(images, str) and images and all(
        isinstance(t, Tensor) for t in images
    ):
        items = [_check_tensor_image(t, f"{what}[{i}]") for i, t in enumerate(images)]
        return _Images([f"{i:04d}" for i in range(len(items))], items, f"{len(items)} tensors")
    from gancr.data import resolve_source, source_label

    paths = resolve_source(images)
    return _Images([p.stem for p in paths], list(paths), f"{source_label(images)} ({len(paths)} images)")


def _fit(image: Tensor, max_size: int | None) -> Tensor:
    """Downscale (antialiased) so the longer side is at most ``max_size``; never upscale."""
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    if max_size is None or max(h, w) <= max_size:
        return image
    scale = max_size / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def _resize(batch: Tensor, size: tuple[int, int]) -> Tensor:
    import torch.nn.functional as F

    if tuple(batch.shape[-2:]) == tuple(size):
        return batch
    return F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _views(image: Tensor, size: int, count: int) -> Tensor:
    """``(count, 3, size, size)``: the whole image, then (count 5) its four quadrants."""
    import torch

    views = [image]
    if count == 5:
        h, w = image.shape[-2:]
        h2, w2 = h // 2, w // 2
        views += [image[:, :h2, :w2], image[:, :h2, w2:], image[:, h2:, :w2], image[:, h2:, w2:]]
    return torch.cat([_resize(v[None], (size, size)) for v in views])


def _check_side(image: Tensor, name: str, what: str) -> None:
    if min(image.shape[-2:]) < MIN_SIDE:
        raise GancrError(
            f"evaluate: {what} image {name!r} is {tuple(image.shape[-2:])} after fitting; the pixel "
            f"metrics need both sides of at least {MIN_SIDE} pixels (raise max_size)"
        )


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------


def parse_encoder(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """An encoder spec from a mapping, YAML/JSON text (``{name: vgg19, layer: relu3_1}``) or a file.

    Raises:
        GancrError: the text is neither a mapping nor a file holding one.
    """
    if value is None:
        return dict(DEFAULT_ENCODER)
    if isinstance(value, Mapping):
        return dict(value)
    import yaml

    text = str(value)
    path = Path(text).expanduser()
    if "{" not in text and "\n" not in text and path.is_file():
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GancrError(f"--encoder: not YAML or JSON ({str(exc).splitlines()[0]}): {value!r}") from None
    if isinstance(data, str):  # just a name: vgg19
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise GancrError(
            f"--encoder: expected a mapping with a name, e.g. '{{name: vgg19, layer: relu3_1}}', got {value!r}"
        )
    return data


def _build_encoder(spec: Mapping[str, Any], device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder (eval, no grad) and its description: name, layers, pretrained, seed."""
    import torch

    from gancr.builder import build_component

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ENCODER_SEED)
        encoder = build_component("encoder", dict(spec))
    encoder.eval().requires_grad_(False).to(device)
    pretrained = bool(getattr(encoder, "pretrained", False))
    layers = [f.name for f in getattr(encoder, "feature_info", [])]
    info: dict[str, Any] = {
        "encoder": dict(spec),
        "layers": layers,
        "pretrained": pretrained,
        "description": f"{spec['name']} ({', '.join(layers)})" + ("" if pretrained else f", random weights (seed {ENCODER_SEED})"),
    }
    if not pretrained:
        info["seed"] = ENCODER_SEED
    return encoder, info


@dataclass
class _Models:
    generator: nn.Module
    content_net: nn.Module | None
    content_net_note: str
    checkpoint: str | None
    uses_ema: bool | None
    spec: Any


def _resolve_models(generator_or_run: Any, content_net: Any, ema: bool, device: torch.device) -> _Models:
    """A run directory / weights file, a Trainer, a Trio or a generator -> the models to evaluate."""
    from torch import nn

    from gancr.trio import Trio

    if isinstance(generator_or_run, (str, os.PathLike)):
        from gancr.inference import load_content_net, load_generator

        generator = load_generator(generator_or_run, ema=ema, device=device)
        spec = generator.spec
        note = ""
        if content_net is None:
            if spec.model.content_net.train:
                content_net = load_content_net(generator_or_run, device=device)
            else:
                note = "the run has no content-retention net (model.content_net.train: false)"
        return _Models(generator, content_net, note, str(generator.weights_path), generator.uses_ema, spec)
    if hasattr(generator_or_run, "inference_generator") and hasattr(generator_or_run, "content_net"):
        trainer = generator_or_run
        note = ""
        if content_net is None:
            if trainer.train_content_net:
                content_net = trainer.content_net
            else:
                note = "the run has no content-retention net (model.content_net.train: false)"
        return _Models(trainer.inference_generator(), content_net, note, str(trainer.out_dir),
                       trainer.ema is not None, trainer.spec)
    if isinstance(generator_or_run, Trio):
        spec = generator_or_run.spec
        note = ""
        cn = content_net
        if cn is None:
            if spec is not None and not spec.model.content_net.train:
                note = "the trio has no content-retention net (model.content_net.train: false)"
            else:
                cn = generator_or_run.content_net
        return _Models(generator_or_run.generator, cn, note, None, None, spec)
    if isinstance(generator_or_run, nn.Module) or callable(generator_or_run):
        note = "" if content_net is not None else "no content net given"
        return _Models(generator_or_run, content_net, note, None, getattr(generator_or_run, "uses_ema", None),
                       getattr(generator_or_run, "spec", None))
    raise GancrError(
        "evaluate: expected a run directory, a weights file, a Trainer, a Trio or a generator module, "
        f"got {type(generator_or_run).__name__}"
    )


# --------------------------------------------------------------------------------------
# set statistics, accumulated image by image
# --------------------------------------------------------------------------------------


class _SetStats:
    """What the style metrics need of an image set, accumulated one image at a time.

    Sum of per-image Gram matrices per layer (the mean Gram matrix of
    :func:`gancr.metrics.gram_distance`), the whole-image views for the Lab histograms
    (uint8), and the KID/FID views or vectors.
    """

    def __init__(self, inception_weights: str | None = None) -> None:
        self.inception_weights = inception_weights
        self.inception_info: dict[str, Any] = {}
        self.gram_sum: list[Tensor] | None = None
        self.count = 0
        self.lab_views: list[Tensor] = []
        self.vectors: list[Tensor] = []
        self.pending_views: list[Tensor] = []  # for Inception, in chunks

    def add(self, views: Tensor, encoder: nn.Module, kid_views: Tensor | None = None) -> list[Tensor]:
        """Add one image's views; returns the encoder's features of the whole-image view.

        ``kid_views`` (Inception's inputs, 299 px) give the KID/FID vectors; without them the
        encoder's pooled features of ``views`` do.
        """
        import torch
        from gancr import metrics as M

        feats = M.encoder_features(encoder, views, batch_size=views.shape[0])
        whole = [f[:1] for f in feats]
        grams = [M._mean_gram(f) for f in whole]  # one image: its Gram matrix, float64
        self.gram_sum = grams if self.gram_sum is None else [a + b for a, b in zip(self.gram_sum, grams)]
        self.count += 1
        self.lab_views.append((views[0] * 255).round().to(torch.uint8).cpu())
        if kid_views is None:
            self.vectors.append(M.pooled(feats).cpu())
        else:
            self.pending_views.append((kid_views * 255).round().to(torch.uint8).cpu())
            if len(self.pending_views) >= 32:  # bounded memory: Inception in chunks of images
                self.flush_inception()
        return whole

    def flush_inception(self) -> None:
        """Inception features of the images added since the last flush."""
        import torch
        from gancr import metrics as M

        if not self.pending_views:
            return
        views = torch.cat(self.pending_views).float() / 255
        self.pending_views = []
        try:
            feats, self.inception_info = M.inception_features(views, weights=self.inception_weights)
        except ValueError as exc:  # a file that is not torchvision's inception_v3
            raise GancrError(str(exc)) from None
        self.vectors.append(feats.cpu())

    def mean_grams(self) -> list[Tensor]:
        assert self.gram_sum is not None
        return [g / self.count for g in self.gram_sum]

    def lab_images(self) -> Tensor:
        import torch

        return torch.stack(self.lab_views).float() / 255

    def feature_vectors(self) -> Tensor:
        import torch

        return torch.cat(self.vectors)


def _gram_distance(a: _SetStats, b: _SetStats) -> float:
    """:func:`gancr.metrics.gram_distance` from accumulated mean Gram matrices (same formula)."""
    ga, gb = a.mean_grams(), b.mean_grams()
    return sum(float((x - y).pow(2).sum()) for x, y in zip(ga, gb)) / len(ga)


def _kid_fid_features(kid_features: str, inception_weights: str | None, encoder_info: dict[str, Any]) -> dict[str, Any]:
    """Decide the KID/FID feature space: ``{"use_inception": bool, ...description}``."""
    from gancr import metrics as M

    if kid_features not in ("auto", "inception", "encoder"):
        raise GancrError(f"evaluate: kid_features must be auto, inception or encoder, got {kid_features!r}")
    reason = None
    if kid_features in ("auto", "inception"):
        try:
            path = M._inception_weights_file(inception_weights)
            return {"use_inception": True, "features": "inception_v3/pool", "pretrained": True,
                    "weights": str(path), "description": "torchvision Inception-v3 pool features (2048-d), pretrained"}
        except M.WeightsUnavailable as exc:
            if kid_features == "inception":
                raise GancrError(str(exc)) from None
            reason = f"Inception weights not on this machine: {exc}"
    out = {
        "use_inception": False,
        "features": f"{encoder_info['encoder']['name']}/pooled({', '.join(encoder_info['layers'])})",
        "pretrained": encoder_info["pretrained"],
        "description": "global-average-pooled features of the chosen encoder: " + encoder_info["description"],
    }
    if reason:
        out["fallback_reason"] = reason
    return out


# --------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------


def _value(value: float | None, **extra: Any) -> dict[str, Any]:
    """A JSON-safe metric value: non-finite values become ``None`` with a note."""
    out: dict[str, Any] = {"value": value}
    if value is not None and not math.isfinite(value):
        out["value"] = None
        out["note"] = f"{value} (e.g. PSNR of identical images)"
    out.update(extra)
    return out


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values))


def evaluate(
    generator_or_run: Any,
    content: ImageSet,
    style: ImageSet,
    reference: ImageSet | None = None,
    *,
    encoder: str | Mapping[str, Any] | None = None,
    max_size: int | None = 512,
    feature_size: int = 224,
    views: int = 5,
    kid_features: str = "auto",
    inception_weights: str | os.PathLike | None = None,
    content_net: nn.Module | None = None,
    ema: bool = True,
    device: str | torch.device = "cpu",
    kid_subsets: int = 100,
    per_image: bool = False,
) -> dict[str, Any]:
    """Run the generator on the content images and compute every content, style and reference metric.

    Args:
        generator_or_run: a run directory, ``generator.safetensors`` or checkpoint file; a
            :class:`~gancr.training.Trainer`; a :class:`~gancr.trio.Trio`; or a generator
            module (any callable ``(B, 3, H, W) -> (B, 3, H, W)`` in [0, 1]).
        content: the content images: a folder, file, ``builtin:NAME`` or list of those, an
            ``(N, 3, H, W)`` tensor, a list of ``(3, H, W)`` tensors or a name -> tensor mapping.
        style: the style images, in any of the same forms.
        reference: optional target images, matched to content images by file stem (by
            position for unnamed tensors); content images without a reference are left out
            of the reference metrics and counted.
        encoder: the encoder spec of the perceptual and Gram features (and of KID/FID when
            Inception is not used): a mapping or YAML/JSON text; default
            :data:`DEFAULT_ENCODER` with random weights.
        max_size: fit images so their longer side is at most this many pixels (None: as is).
        feature_size: side of the square views fed to the encoder.
        views: views per image for KID/FID: 1 (the whole image) or 5 (and its quadrants).
        kid_features: ``"auto"`` (Inception when its weights are on this machine, else the
            encoder), ``"inception"`` (required) or ``"encoder"``.
        inception_weights: a local torchvision ``inception_v3`` state-dict file (default:
            torchvision's cache).
        content_net: the content net to use (default: the run's, when it trained one).
        ema: use the run's EMA weights when it kept them.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        kid_subsets: random subsets KID averages over.
        per_image: also return each content image's content and reference values.

    Returns:
        A JSON-serialisable dict: ``metrics`` (``group/name`` -> ``{"value", "better",
        "metric", "features", ...}``; KID adds ``"std"``; a metric that cannot be computed
        has ``"value": None`` and a ``"note"``), ``features`` (for ``perceptual``,
        ``kid_fid`` and ``content_net``: what they are and whether they were pretrained),
        ``settings``, and the image counts.
    """
    import torch
    from torch import Tensor
    from gancr import metrics as M

    from gancr import __version__
    from gancr.devices import eval_mode, resolve_device

    if views not in (1, 5):
        raise GancrError(f"evaluate: views must be 1 or 5, got {views!r}")
    if max_size is not None and (not isinstance(max_size, int) or max_size < MIN_SIDE):
        raise GancrError(f"evaluate: max_size must be an integer >= {MIN_SIDE} or None, got {max_size!r}")
    if not isinstance(feature_size, int) or feature_size < 16:
        raise GancrError(f"evaluate: feature_size must be an integer >= 16, got {feature_size!r}")
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    models = _resolve_models(generator_or_run, content_net, ema, dev)
    enc_spec = parse_encoder(encoder)
    enc, enc_info = _build_encoder(enc_spec, dev)
    kid_info = _kid_fid_features(kid_features, None if inception_weights is None else str(inception_weights), enc_info)
    use_inception = kid_info.pop("use_inception")

    contents = _image_set(content, "content")
    styles = _image_set(style, "style")
    refs = _image_set(reference, "reference") if reference is not None else None
    if len(contents) < 1:
        raise GancrError("evaluate: no content images")
    ref_index: dict[str, int] = {}
    if refs is not None:
        by_position = all(isinstance(i, Tensor) for i in refs.items) and all(isinstance(i, Tensor) for i in contents.items)
        if by_position:
            ref_index = {contents.names[i]: i for i in range(min(len(contents), len(refs)))}
        else:
            exact = {n: i for i, n in enumerate(refs.names)}
            folded = {n.casefold(): i for i, n in enumerate(refs.names)}
            for n in contents.names:
                if n in exact:
                    ref_index[n] = exact[n]
                elif n.casefold() in folded:
                    ref_index[n] = folded[n.casefold()]

    rows: dict[str, list[float]] = {k: [] for k in ("ssim", "edge_f1", "sobel", "perceptual", "content_net",
                                                    "ref_psnr", "ref_ssim", "ref_edge_f1")}
    per: list[dict[str, Any]] = []
    weights_file = kid_info.get("weights") if use_inception else None
    out_stats, style_stats = _SetStats(weights_file), _SetStats(weights_file)

    def kid_views(image: Tensor) -> Tensor | None:
        return _views(image, INCEPTION_SIZE, views) if use_inception else None
    cn = models.content_net
    with eval_mode(models.generator, cn):
        for i, name in enumerate(contents.names):
            x = _fit(contents.load(i), max_size).to(dev)
            _check_side(x, name, "content")
            y = _run_generator(models.generator, x[None])
            xb = x[None]
            item: dict[str, Any] = {"name": name, "size": list(x.shape[-2:])}
            item["ssim"] = M.ssim(xb, y)
            item["edge_f1"] = M.edge_f1(xb, y)
            item["sobel"] = M.sobel_correlation(xb, y)
            vx = _views(x, feature_size, views)
            vy = _views(y[0], feature_size, views)
            fx = [f[:1] for f in M.encoder_features(enc, vx[:1])]
            fy = out_stats.add(vy, enc, kid_views(y[0]))
            item["perceptual"] = M.feature_distance(fx, fy)
            if cn is not None:
                item["content_net"] = M.feature_distance(cn.features(xb), cn.features(y))
            if refs is not None and name in ref_index:
                r = refs.load(ref_index[name]).to(dev)
                r = _match_reference(r, y[0], name)
                rb = r[None]
                item["ref_psnr"] = M.psnr(rb, y)
                item["ref_ssim"] = M.ssim(rb, y)
                item["ref_edge_f1"] = M.edge_f1(rb, y)
            for k in rows:
                if k in item:
                    rows[k].append(float(item[k]))
            per.append(item)
        for i, name in enumerate(styles.names):
            s = _fit(styles.load(i), max_size).to(dev)
            style_stats.add(_views(s, feature_size, views), enc, kid_views(s))
        out_stats.flush_inception()
        style_stats.flush_inception()
    kid_info.update({k: v for k, v in out_stats.inception_info.items() if k not in kid_info})
    a, b = out_stats.feature_vectors(), style_stats.feature_vectors()
    if min(a.shape[0], b.shape[0]) >= 2:
        kid_mean, kid_std = M.kid(a, b, subsets=kid_subsets)
        fid_value: float | None = M.fid(a, b)
        kid_note = {}
    else:
        kid_mean, kid_std, fid_value = None, None, None
        kid_note = {"note": f"needs at least 2 feature vectors per set, got {a.shape[0]} and {b.shape[0]} (use views=5)"}
    kid_info.update({"vectors": {"outputs": int(a.shape[0]), "style": int(b.shape[0])}, "dims": int(a.shape[1])})

    values: dict[str, dict[str, Any]] = {
        "content/ssim": _value(_mean(rows["ssim"])),
        "content/edge_f1": _value(_mean(rows["edge_f1"])),
        "content/sobel_correlation": _value(_mean(rows["sobel"])),
        "content/perceptual_distance": _value(_mean(rows["perceptual"])),
        "content/content_net_distance": (
            _value(_mean(rows["content_net"])) if rows["content_net"] else _value(None, note=models.content_net_note)
        ),
        "style/gram_distance": _value(_gram_distance(out_stats, style_stats)),
        "style/lab_histogram_distance": _value(M.lab_histogram_distance(out_stats.lab_images(), style_stats.lab_images())),
        "style/kid": _value(kid_mean, std=kid_std, **kid_note),
        "style/fid": _value(fid_value, **kid_note),
    }
    n_pairs = len(rows["ref_psnr"])
    for key, row in (("reference/psnr", "ref_psnr"), ("reference/ssim", "ref_ssim"), ("reference/edge_f1", "ref_edge_f1")):
        if n_pairs:
            values[key] = _value(_mean(rows[row]))
        else:
            values[key] = _value(None, note="no references given" if refs is None else "no reference matched a content image by file stem")
    metrics_out: dict[str, dict[str, Any]] = {}
    for spec in METRICS:
        entry = values[spec.key]
        metrics_out[spec.key] = {**entry, "better": spec.better, "metric": spec.metric, "features": spec.features,
                                 "summary": spec.summary}

    cn_info: dict[str, Any]
    if cn is not None:
        cn_layers = [f.name for f in getattr(cn.encoder, "feature_info", [])]
        cn_info = {"description": "the run's trained content-retention net encoder E_c (" + ", ".join(cn_layers) + ")",
                   "layers": cn_layers, "pretrained": True, "trained_by": "this run"}
    else:
        cn_info = {"description": models.content_net_note or "none", "pretrained": None}
    result: dict[str, Any] = {
        "gancr_version": __version__,
        "checkpoint": models.checkpoint,
        "uses_ema": models.uses_ema,
        "content": {"source": contents.label, "images": len(contents)},
        "style": {"source": styles.label, "images": len(styles)},
        "reference": None if refs is None else {
            "source": refs.label, "images": len(refs), "pairs": n_pairs,
            "unmatched": [n for n in contents.names if n not in ref_index],
        },
        "settings": {"max_size": max_size, "feature_size": feature_size, "views": views,
                     "kid_features": kid_features, "kid_subsets": kid_subsets, "device": str(dev)},
        "features": {
            "pixels": {"description": "pixels at the evaluation size (longer side <= max_size)", "pretrained": None},
            "perceptual": enc_info,
            "kid_fid": kid_info,
            "content_net": cn_info,
        },
        "metrics": metrics_out,
    }
    if per_image:
        result["per_image"] = [{k: (float(v) if isinstance(v, float) else v) for k, v in p.items()} for p in per]
    return result


def _run_generator(generator: Any, x: Tensor) -> Tensor:
    """``G(x)`` in [0, 1], float32, on ``x``'s device (the generator stays where it is)."""
    from torch import Tensor, nn

    param = next(generator.parameters(), None) if isinstance(generator, nn.Module) else None
    inp = x if param is None else x.to(param.device)
    y = generator(inp)
    if not isinstance(y, Tensor) or tuple(y.shape) != tuple(inp.shape):
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise GancrError(f"evaluate: the generator returned {got} for an input of shape {tuple(inp.shape)}")
    return y.float().clamp(0, 1).to(x.device)


def _match_reference(r: Tensor, y: Tensor, name: str) -> Tensor:
    """The reference resized to the output's size; the aspect ratios must agree within 2 %."""
    (rh, rw), (h, w) = r.shape[-2:], y.shape[-2:]
    if (rh, rw) == (h, w):
        return r
    if abs((rw / rh) / (w / h) - 1) > 0.02:
        raise GancrError(
            f"evaluate: reference {name!r} is {rw}x{rh} but its content image is evaluated at {w}x{h}: "
            "the aspect ratios differ, so they are not a pair"
        )
    return _resize(r[None], (h, w))[0]


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------


def _fmt(entry: Mapping[str, Any]) -> str:
    v = entry.get("value")
    if v is None:
        return "n/a"
    text = f"{v:.4g}"
    if entry.get("std") is not None:
        text += f" ± {entry['std']:.2g}"
    return text


def _features_label(result: Mapping[str, Any], key: str) -> str:
    info = result["features"].get(key, {})
    if key == "pixels":
        return "pixels"
    if key == "content_net":
        return "content net E_c" if info.get("pretrained") else "-"
    name = info.get("features") or (info.get("encoder", {}).get("name", "?") + " " + ",".join(info.get("layers", [])))
    return f"{name} ({'pretrained' if info.get('pretrained') else 'random weights'})"


def table_rows(result: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, value, better, features) for every metric of a result."""
    rows = []
    for key, entry in result["metrics"].items():
        rows.append((key, _fmt(entry), entry["better"], _features_label(result, entry["features"])))
    return rows


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text table: metric, value, better (higher/lower), features; then the notes."""
    rows = table_rows(result)
    header = ("METRIC", "VALUE", "BETTER", "FEATURES")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths)), r[3]]).rstrip() for r in [header, *rows]]
    notes = []
    for key, entry in result["metrics"].items():
        if entry.get("note"):
            notes.append(f"  {key}: {entry['note']}")
    f = result["features"]
    notes.append(f"  perceptual/Gram features: {f['perceptual']['description']}")
    notes.append(f"  KID/FID features: {f['kid_fid']['description']} "
                 f"({f['kid_fid']['vectors']['outputs']} vs {f['kid_fid']['vectors']['style']} vectors)")
    if f["kid_fid"].get("fallback_reason"):
        notes.append("  KID/FID: Inception weights are not on this machine; used the encoder instead")
    ref = result.get("reference")
    if ref and ref.get("unmatched"):
        notes.append(f"  {len(ref['unmatched'])} content image(s) without a reference: {', '.join(ref['unmatched'][:5])}")
    return "\n".join(lines + ["", "notes:", *notes])


def markdown_table(result: Mapping[str, Any]) -> str:
    """The table as Markdown (for docs)."""
    lines = ["| metric | value | better | features |", "|---|---|---|---|"]
    for r in table_rows(result):
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


#: Display names of the metrics in :data:`gancr.metrics.METRIC_DOCS`, in docs order.
_DOC_NAMES = {
    "ssim": "SSIM",
    "edge_f1": "Edge F1",
    "sobel_correlation": "Sobel correlation",
    "feature_distance": "Feature (perceptual) distance",
    "gram_distance": "Gram distance",
    "lab_histogram_distance": "Lab histogram distance",
    "kid": "KID",
    "fid": "FID",
    "psnr": "PSNR",
}


def metric_docs_markdown() -> str:
    """The metric reference of docs/evaluation.md: each metric, where ``evaluate`` reports it, its doc.

    Generated from :data:`gancr.metrics.METRIC_DOCS` and :data:`METRICS`; the docs test checks
    the page holds exactly this text.
    """
    from gancr.metrics import METRIC_DOCS

    parts = []
    for metric, title in _DOC_NAMES.items():
        uses = [m for m in METRICS if m.metric == metric]
        keys = ", ".join(f"`{m.key}`" for m in uses)
        better = {m.better for m in uses}
        better_text = f"{better.pop()} is better" if len(better) == 1 else "see each key"
        parts.append(f"**{title}** ({keys}; {better_text}). {METRIC_DOCS[metric]}\n")
    return "\n".join(parts)


def write_json(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a result as JSON (atomically; strict JSON: no NaN or infinity)."""
    from gancr.runs import atomic_write_text

    return atomic_write_text(Path(path), json.dumps(result, indent=2, allow_nan=False) + "\n")


# --------------------------------------------------------------------------------------
# the command line: gancr eval
# --------------------------------------------------------------------------------------


def _add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="score a trained generator: content retention, style closeness, paired references",
        description="Run the generator on the content images; print a table of every content-retention, "
        "style and (with --reference) paired metric, and which features each used.",
    )
    p.add_argument("--checkpoint", required=True, help="a run directory, generator.safetensors or checkpoint")
    p.add_argument("--content", required=True, nargs="+", metavar="DIR",
                   help="content images: folders, files or builtin:NAME (e.g. builtin:holdout)")
    p.add_argument("--style", required=True, nargs="+", metavar="DIR", help="the style set (e.g. builtin:cartoon)")
    p.add_argument("--reference", nargs="+", metavar="DIR", default=None,
                   help="target images matched to content images by file stem (PSNR, SSIM, edge F1)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="write the results as JSON (RUN/eval.json is shown by `gancr report RUN`)")
    p.add_argument("--encoder", default=None, metavar="YAML",
                   help="encoder of the perceptual/Gram (and fallback KID/FID) features, e.g. "
                   "'{name: vgg19, layer: relu3_1, weights: vgg19.pth}' (default: vgg19 relu3_1, random weights)")
    p.add_argument("--max-size", type=int, default=512, metavar="PX",
                   help="fit images so their longer side is at most PX (default: %(default)s; 0: keep the size)")
    p.add_argument("--feature-size", type=int, default=224, metavar="PX",
                   help="side of the square views fed to the encoder (default: %(default)s)")
    p.add_argument("--views", type=int, choices=(1, 5), default=5,
                   help="KID/FID vectors per image: the whole image, or it and its quadrants (default: %(default)s)")
    p.add_argument("--kid-features", choices=("auto", "inception", "encoder"), default="auto",
                   help="KID/FID feature space; auto: Inception when its weights are on this machine (default)")
    p.add_argument("--inception-weights", default=None, metavar="FILE",
                   help="torchvision inception_v3 state dict (default: torchvision's cache; never downloaded)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="use the EMA weights when the run kept them (default: yes)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    p.add_argument("--per-image", action="store_true", help="add each image's values to the JSON")


def cmd_eval(args: argparse.Namespace) -> int:
    import sys

    result = evaluate(
        args.checkpoint,
        args.content if len(args.content) > 1 else args.content[0],
        args.style if len(args.style) > 1 else args.style[0],
        None if args.reference is None else (args.reference if len(args.reference) > 1 else args.reference[0]),
        encoder=parse_encoder(args.encoder),
        max_size=args.max_size or None,
        feature_size=args.feature_size,
        views=args.views,
        kid_features=args.kid_features,
        inception_weights=args.inception_weights,
        ema=args.ema,
        device=args.device,
        per_image=args.per_image,
    )
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
