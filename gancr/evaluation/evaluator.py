"""``evaluate``: run the generator on the content images, score content retention, style closeness
and paired references, and say which features every metric used (see :mod:`gancr.evaluation`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor, nn

from gancr import __version__
from gancr.devices import eval_mode, resolve_device
from gancr.errors import GancrError
from gancr.data.resize import fit, resize
from gancr.evaluation.image_sets import MIN_SIDE, ImageSet, Images, check_side, crops_of, image_set, views_of
from gancr.evaluation.models import Models, build_encoder, parse_encoder, resolve_models
from gancr.evaluation.stats import SetStats, hed_edges, kid_fid_features, perceptual_features
from gancr.evaluation.tables import METRICS
from gancr.metrics.content import edge_f1, feature_distance, psnr, sobel_correlation, ssim
from gancr.metrics.features import encoder_features
from gancr.metrics.hed import hed_edge_f1
from gancr.metrics.lpips import LPIPS
from gancr.metrics.style import chroma_energy, fid, kid, lab_histogram_distance
from gancr.progress import Progress

__all__ = ["evaluate", "EvalOptions", "check_settings"]


@dataclass(frozen=True)
class EvalOptions:
    """How :func:`evaluate` measures: the images' sizes, the views, the feature networks.

    Args:
        encoder: the encoder spec of the Gram features (and of the perceptual distance and
            KID/FID when their networks are not used): a mapping or YAML/JSON text; default
            :data:`~gancr.evaluation.DEFAULT_ENCODER` with random weights.
        max_size: fit images so their longer side is at most this many pixels (None: as is).
        feature_size: side of the square views fed to the encoder.
        views: views per image for KID/FID: 1 (the whole image) or 5 (and its quadrants).
        kid_features: ``"auto"`` (the FID Inception when its file is on this machine, else
            the encoder, labelled a fallback), ``"inception"`` (required) or ``"encoder"``.
        inception_weights: the FID Inception's file, ``pt_inception-2015-12-05-6726825d.pth``
            (default: torch hub's cache; see :mod:`gancr.metrics.inception`).
        perceptual: the content perceptual distance: ``"auto"`` (LPIPS when its AlexNet file
            is on this machine, else the unit-normalised distance in the encoder's features,
            labelled a fallback), ``"lpips"`` (required) or ``"encoder"``.
        lpips_weights: torchvision's AlexNet file for LPIPS, ``alexnet-owt-7be5be79.pth``
            (default: torch hub's cache; see :mod:`gancr.metrics.lpips`).
        kid_subsets: random subsets KID averages over.
        per_image: also return each content image's content and reference values.
    """

    encoder: str | Mapping[str, Any] | None = None
    max_size: int | None = 512
    feature_size: int = 224
    views: int = 5
    kid_features: str = "auto"
    inception_weights: str | os.PathLike[str] | None = None
    perceptual: str = "auto"
    lpips_weights: str | os.PathLike[str] | None = None
    kid_subsets: int = 100
    per_image: bool = False

    def __post_init__(self) -> None:
        check_settings(self.views, self.max_size, self.feature_size)

    def settings(self, device: torch.device) -> dict[str, Any]:
        """The settings a result reports."""
        return {"max_size": self.max_size, "feature_size": self.feature_size, "views": self.views,
                "kid_features": self.kid_features, "perceptual": self.perceptual, "kid_subsets": self.kid_subsets,
                "device": str(device)}


def evaluate(
    generator_or_run: Any,
    content: ImageSet,
    style: ImageSet,
    reference: ImageSet | None = None,
    options: EvalOptions | None = None,
    *,
    content_net: nn.Module | None = None,
    ema: bool = True,
    device: str | torch.device = "auto",
    progress: bool = False,
    **settings: Any,
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
        options: how to measure (:class:`EvalOptions`; its defaults when None).
        content_net: the content net to use (default: the run's, when it trained one).
        ema: use the run's EMA weights when it kept them.
        device: ``"auto"`` (CUDA when present, as every entry point: :func:`gancr.devices.resolve_device`),
            ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress: show progress over the images (:class:`gancr.progress.Progress`, on standard error).
        settings: fields of :class:`EvalOptions` given one by one (``max_size=256``), over ``options``.

    Returns:
        A JSON-serialisable dict: ``metrics`` (``group/name`` -> ``{"value", "better",
        "metric", "features", ...}``; KID adds ``"std"``; a metric that cannot be computed
        has ``"value": None`` and a ``"note"``), ``features`` (for ``perceptual``,
        ``kid_fid`` and ``content_net``: what they are and whether they were pretrained),
        ``settings``, and the image counts.
    """
    opts = _options(options, settings)
    dev = resolve_device(device, "evaluate: device")
    models = resolve_models(generator_or_run, content_net, ema, dev)
    networks = _FeatureNetworks.load(opts, dev)  # once, for every image of both sets
    contents, styles = image_set(content, "content"), image_set(style, "style")
    refs = image_set(reference, "reference") if reference is not None else None
    if len(contents) < 1:
        raise GancrError("evaluate: no content images")
    ref_index = _reference_index(contents, refs)
    out_stats, style_stats = SetStats(networks.inception), SetStats(networks.inception)
    scorer = _ContentScorer(models, networks, out_stats, dev, opts)
    with eval_mode(models.generator, models.content_net), \
            Progress(len(contents) + len(styles), "eval", "image", enabled=progress) as shown:
        per = []
        for i in range(len(contents)):
            per.append(scorer.score(contents, i, refs, ref_index))
            shown.update(1)
        style_chroma = []
        for i in range(len(styles)):
            style_chroma.append(scorer.add_style(styles.load(i), style_stats))
            shown.update(1)
    rows = {k: [float(p[k]) for p in per if k in p] for k in _ROWS}
    values = {
        **_content_values(rows, models.content_net_note, networks.lpips is not None,
                          networks.hed_info.get("description", "")),
        **_chroma_values(rows, style_chroma),
        **_style_values(out_stats, style_stats, networks.kid_info, opts.kid_subsets),
        **_reference_values(rows, refs),
    }
    result = _result(models, networks, opts, dev, values, (contents, styles, refs), rows, ref_index)
    if opts.per_image:
        result["per_image"] = [{k: (float(v) if isinstance(v, float) else v) for k, v in p.items()} for p in per]
    return result


def _options(options: EvalOptions | None, settings: dict[str, Any]) -> EvalOptions:
    """``options`` with the fields given one by one; an unknown one is an error naming the known."""
    known = {f.name for f in fields(EvalOptions)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"evaluate() got unknown settings {unknown}; EvalOptions has: {', '.join(sorted(known))}")
    return replace(options or EvalOptions(), **settings)


@dataclass
class _FeatureNetworks:
    """The networks of the feature metrics, loaded once, and what they are."""

    encoder: nn.Module
    encoder_info: dict[str, Any]
    kid_info: dict[str, Any]
    inception: Any
    distance_info: dict[str, Any]
    lpips: LPIPS | None
    hed: Any = None  # HEDEdges, when its weights are installed
    hed_info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, opts: EvalOptions, device: torch.device) -> _FeatureNetworks:
        enc, enc_info = build_encoder(parse_encoder(opts.encoder), device)
        path = (lambda p: None if p is None else str(p))
        kid_info, inception = kid_fid_features(opts.kid_features, path(opts.inception_weights), enc_info, device)
        distance_info, lpips = perceptual_features(opts.perceptual, path(opts.lpips_weights), enc_info, device)
        hed, hed_info = hed_edges(device)
        return cls(enc, enc_info, kid_info, inception, distance_info, lpips, hed, hed_info)


def _result(models: Models, networks: _FeatureNetworks, opts: EvalOptions, device: torch.device,
            values: dict[str, dict[str, Any]], sets: tuple[Images, Images, Images | None],
            rows: dict[str, list[float]], ref_index: dict[str, int]) -> dict[str, Any]:
    """The JSON-serialisable result of :func:`evaluate` (without ``per_image``)."""
    contents, styles, refs = sets
    return {
        "gancr_version": __version__,
        "checkpoint": models.checkpoint,
        "uses_ema": models.uses_ema,
        "content": {"source": contents.label, "images": len(contents)},
        "style": {"source": styles.label, "images": len(styles)},
        "reference": None if refs is None else {
            "source": refs.label, "images": len(refs), "pairs": len(rows["ref_psnr"]),
            "unmatched": [n for n in contents.names if n not in ref_index],
        },
        "settings": opts.settings(device),
        "features": {
            "pixels": {"description": "pixels at the evaluation size (longer side <= max_size)", "pretrained": None},
            "perceptual": networks.encoder_info,
            "perceptual_distance": networks.distance_info,
            "kid_fid": networks.kid_info,
            "content_net": _content_net_info(models),
            "hed": networks.hed_info,
        },
        "metrics": {
            spec.key: {**values[spec.key], "better": spec.better, "metric": values[spec.key].get("metric", spec.metric),
                       "features": spec.features, "summary": spec.summary}
            for spec in METRICS
        },
    }


def check_settings(views: int, max_size: int | None, feature_size: int) -> None:
    """A :class:`GancrError` for settings :func:`evaluate` cannot use."""
    if views not in (1, 5):
        raise GancrError(f"evaluate: views must be 1 or 5, got {views!r}")
    if max_size is not None and (not isinstance(max_size, int) or max_size < MIN_SIDE):
        raise GancrError(f"evaluate: max_size must be an integer >= {MIN_SIDE} or None, got {max_size!r}")
    if not isinstance(feature_size, int) or feature_size < 16:
        raise GancrError(f"evaluate: feature_size must be an integer >= 16, got {feature_size!r}")


def _reference_index(contents: Images, refs: Images | None) -> dict[str, int]:
    """Content name -> reference index: by file stem (exactly, else ignoring case), by position for tensors."""
    ref_index: dict[str, int] = {}
    if refs is None:
        return ref_index
    by_position = all(isinstance(i, Tensor) for i in refs.items) and all(isinstance(i, Tensor) for i in contents.items)
    if by_position:
        return {contents.names[i]: i for i in range(min(len(contents), len(refs)))}
    exact = {n: i for i, n in enumerate(refs.names)}
    folded = {n.casefold(): i for i, n in enumerate(refs.names)}
    for n in contents.names:
        if n in exact:
            ref_index[n] = exact[n]
        elif n.casefold() in folded:
            ref_index[n] = folded[n.casefold()]
    return ref_index


#: The per-image values of a content image, as they are averaged into the table.
_ROWS = ("ssim", "edge_f1", "hed_f1", "sobel", "perceptual", "content_net", "chroma_in", "chroma_out",
         "ref_psnr", "ref_ssim", "ref_edge_f1")


class _ContentScorer:
    """Runs the generator on one content image and scores it; adds its output to the output set,
    and a style image to the style set."""

    def __init__(self, models: Models, networks: _FeatureNetworks, out_stats: SetStats, device: torch.device,
                 opts: EvalOptions):
        self.models, self.networks, self.out_stats, self.device, self.opts = models, networks, out_stats, device, opts

    def kid_views(self, image: Tensor) -> list[Tensor] | None:
        """The FID Inception's inputs: the image (and its quadrants) at their own size; it resizes them."""
        return crops_of(image, self.opts.views) if self.networks.inception is not None else None

    def add_style(self, image: Tensor, style_stats: SetStats) -> float:
        """Add a style image's views to ``style_stats``; returns its chroma energy."""
        s = fit(image, self.opts.max_size).to(self.device)
        style_stats.add(views_of(s, self.opts.feature_size, self.opts.views), self.networks.encoder, self.kid_views(s))
        return float(chroma_energy(s[None]))

    def score(self, contents: Images, i: int, refs: Images | None, ref_index: dict[str, int]) -> dict[str, Any]:
        name, enc, cn, opts = contents.names[i], self.networks.encoder, self.models.content_net, self.opts
        x = fit(contents.load(i), opts.max_size).to(self.device)
        check_side(x, name, "content")
        y = _run_generator(self.models.generator, x[None])
        xb = x[None]
        item: dict[str, Any] = {"name": name, "size": list(x.shape[-2:])}
        item["ssim"] = ssim(xb, y)
        item["edge_f1"] = edge_f1(xb, y)
        if self.networks.hed is not None:
            item["hed_f1"] = float(hed_edge_f1(self.networks.hed, xb, y))
        item["sobel"] = sobel_correlation(xb, y)
        item["chroma_in"], item["chroma_out"] = float(chroma_energy(xb)), float(chroma_energy(y))
        vy = views_of(y[0], opts.feature_size, opts.views)
        fy = self.out_stats.add(vy, enc, self.kid_views(y[0]))
        if self.networks.lpips is not None:
            item["perceptual"] = float(self.networks.lpips.distance(xb, y)[0])
        else:  # the fallback: unit-normalised features of the chosen encoder, no learned weights
            vx = views_of(x, opts.feature_size, 1)
            fx = [f[:1] for f in encoder_features(enc, vx)]
            item["perceptual"] = feature_distance(fx, fy)
        if cn is not None:
            item["content_net"] = feature_distance(cn.features(xb), cn.features(y))
        if refs is not None and name in ref_index:
            r = refs.load(ref_index[name]).to(self.device)
            r = _match_reference(r, y[0], name)
            rb = r[None]
            item["ref_psnr"] = psnr(rb, y)
            item["ref_ssim"] = ssim(rb, y)
            item["ref_edge_f1"] = edge_f1(rb, y)
        return item


def _content_values(rows: dict[str, list[float]], content_net_note: str, lpips: bool,
                    hed_note: str = "") -> dict[str, dict[str, Any]]:
    return {
        "content/ssim": _value(_mean(rows["ssim"])),
        "content/edge_f1": _value(_mean(rows["edge_f1"])),
        "content/hed_edge_f1": _value(_mean(rows["hed_f1"])) if rows["hed_f1"] else _value(None, note=hed_note),
        "content/sobel_correlation": _value(_mean(rows["sobel"])),
        "content/perceptual_distance": _value(_mean(rows["perceptual"]), metric="lpips" if lpips else "feature_distance"),
        "content/content_net_distance": (
            _value(_mean(rows["content_net"])) if rows["content_net"] else _value(None, note=content_net_note)
        ),
    }


def _chroma_values(rows: dict[str, list[float]], style_chroma: list[float]) -> dict[str, dict[str, Any]]:
    """High-frequency colour of the outputs and of the style set, each over the inputs'."""
    inputs = _mean(rows["chroma_in"])
    if inputs <= 0:
        note = "the inputs have no high-frequency colour (flat or grey images): no ratio"
        return {"content/chroma_noise": _value(None, note=note), "style/chroma_noise": _value(None, note=note)}
    return {
        "content/chroma_noise": _value(_mean(rows["chroma_out"]) / inputs),
        "style/chroma_noise": _value(_mean(style_chroma) / inputs),
    }


def _style_values(out_stats: SetStats, style_stats: SetStats, kid_info: dict[str, Any],
                  kid_subsets: int) -> dict[str, dict[str, Any]]:
    """Gram, Lab, KID and FID of the outputs against the style set; notes the KID/FID vectors in ``kid_info``."""
    a, b = out_stats.feature_vectors(), style_stats.feature_vectors()
    if min(a.shape[0], b.shape[0]) >= 2:
        kid_mean, kid_std = kid(a, b, subsets=kid_subsets)
        fid_value: float | None = fid(a, b)
        kid_note = {}
    else:
        kid_mean, kid_std, fid_value = None, None, None
        kid_note = {"note": f"needs at least 2 feature vectors per set, got {a.shape[0]} and {b.shape[0]} (use views=5)"}
    kid_info.update({"vectors": {"outputs": int(a.shape[0]), "style": int(b.shape[0])}, "dims": int(a.shape[1])})
    return {
        "style/gram_distance": _value(out_stats.gram_distance(style_stats)),
        "style/lab_histogram_distance": _value(lab_histogram_distance(out_stats.lab_images(), style_stats.lab_images())),
        "style/kid": _value(kid_mean, std=kid_std, **kid_note),
        "style/fid": _value(fid_value, **kid_note),
    }


def _reference_values(rows: dict[str, list[float]], refs: Images | None) -> dict[str, dict[str, Any]]:
    values = {}
    for key, row in (("reference/psnr", "ref_psnr"), ("reference/ssim", "ref_ssim"), ("reference/edge_f1", "ref_edge_f1")):
        if rows["ref_psnr"]:
            values[key] = _value(_mean(rows[row]))
        else:
            values[key] = _value(None, note="no references given" if refs is None else "no reference matched a content image by file stem")
    return values


def _content_net_info(models: Models) -> dict[str, Any]:
    cn = models.content_net
    if cn is None:
        return {"description": models.content_net_note or "none", "pretrained": None}
    layers = [f.name for f in getattr(cn.encoder, "feature_info", [])]
    return {"description": "the run's trained content-retention net encoder E_c (" + ", ".join(layers) + ")",
            "layers": layers, "pretrained": True, "trained_by": "this run"}


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


def _run_generator(generator: Any, x: Tensor) -> Tensor:
    """``G(x)`` in [0, 1], float32, on ``x``'s device (the generator stays where it is)."""
    param = next(generator.parameters(), None) if isinstance(generator, nn.Module) else None
    inp = x if param is None else x.to(param.device)
    y = generator(inp)
    if not isinstance(y, Tensor) or tuple(y.shape) != tuple(inp.shape):
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise GancrError(f"evaluate: the generator returned {got} for an input of shape {tuple(inp.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise GancrError("evaluate: the generator outputs NaN or infinite values (a diverged or corrupt model); "
                         "there is nothing to score")
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
    return resize(r, (h, w))
