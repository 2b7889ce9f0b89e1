"""What :func:`~gancr.evaluation.evaluate` reports, in table order, and its result as tables and JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gancr.metrics.docs import METRIC_DOCS
from gancr.storage.files import atomic_write_text
from gancr.text import text_table

__all__ = ["MetricSpec", "METRICS", "table_rows", "format_table", "markdown_table", "metric_docs_markdown", "write_json"]


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


#: Every metric :func:`~gancr.evaluation.evaluate` reports, in table order.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("content/ssim", "ssim", "higher", "pixels", "SSIM(x, G(x))"),
    MetricSpec("content/edge_f1", "edge_f1", "higher", "pixels", "F1 of Canny edges, x vs G(x)"),
    MetricSpec("content/hed_edge_f1", "hed_edge_f1", "higher", "hed", "F1 of HED edges, x vs G(x)"),
    MetricSpec("content/sobel_correlation", "sobel_correlation", "higher", "pixels",
               "correlation of Sobel magnitudes, x vs G(x)"),
    MetricSpec("content/perceptual_distance", "lpips", "lower", "perceptual_distance",
               "LPIPS (fallback: feature distance), x vs G(x)"),
    MetricSpec("content/chroma_noise", "chroma_energy", "lower", "pixels",
               "high-frequency colour of G(x) over x's (compare style/chroma_noise)"),
    MetricSpec("content/content_net_distance", "feature_distance", "lower", "content_net",
               "feature distance, x vs G(x), the run's content net"),
    MetricSpec("style/gram_distance", "gram_distance", "lower", "perceptual",
               "Gram-matrix distance, outputs vs style set"),
    MetricSpec("style/lab_histogram_distance", "lab_histogram_distance", "lower", "pixels",
               "Lab colour-histogram EMD, outputs vs style set"),
    MetricSpec("style/chroma_noise", "chroma_energy", "lower", "pixels",
               "high-frequency colour of the style set over the inputs' (the level outputs may reach)"),
    MetricSpec("style/kid", "kid", "lower", "kid_fid", "KID, outputs vs style set"),
    MetricSpec("style/fid", "fid", "lower", "kid_fid", "FID, outputs vs style set"),
    MetricSpec("reference/psnr", "psnr", "higher", "pixels", "PSNR(G(x), reference)"),
    MetricSpec("reference/ssim", "ssim", "higher", "pixels", "SSIM(G(x), reference)"),
    MetricSpec("reference/edge_f1", "edge_f1", "higher", "pixels", "edge F1, G(x) vs reference"),
)


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
    if info.get("label"):  # the network and its file, or "fallback, not ..." and what was used
        return str(info["label"])
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
    lines = text_table(("METRIC", "VALUE", "BETTER", "FEATURES"), table_rows(result))
    notes = []
    for key, entry in result["metrics"].items():
        if entry.get("note"):
            notes.append(f"  {key}: {entry['note']}")
    f = result["features"]
    distance = f.get("perceptual_distance")
    if distance:
        notes.append(f"  perceptual distance: {distance['description']}")
    notes.append(f"  Gram features: {f['perceptual']['description']}")
    notes.append(f"  KID/FID features: {f['kid_fid']['description']} "
                 f"({f['kid_fid']['vectors']['outputs']} vs {f['kid_fid']['vectors']['style']} vectors)")
    if distance and distance.get("fallback"):
        notes.append("  perceptual distance: LPIPS's AlexNet file is not on this machine (give it with --lpips-weights FILE)")
    if f["kid_fid"].get("fallback"):
        notes.append("  KID/FID: a fallback, not comparable with published values: the FID Inception's file is not "
                     "on this machine (give it with --inception-weights FILE)")
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
    "lpips": "LPIPS",
    "feature_distance": "Feature distance",
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
    return atomic_write_text(Path(path), json.dumps(result, indent=2, allow_nan=False) + "\n")
