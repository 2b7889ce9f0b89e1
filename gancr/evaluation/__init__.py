r"""Evaluating a trained generator: every metric of :mod:`gancr.metrics` on image folders, and the run report.

:func:`evaluate` runs the generator on the content images and computes

- **content retention** between each input ``x`` and its output ``y = G(x)``: SSIM, the F1
  of Canny edges, the correlation of Sobel magnitudes, the perceptual distance (LPIPS when
  its AlexNet file is on this machine, :mod:`gancr.metrics.lpips`; otherwise, labelled a
  fallback, a unit-normalised distance in a chosen encoder's features), and the content
  net's feature distance (when the run trained one);
- **style closeness** between the set of outputs and the style set: Gram-matrix distance,
  Lab colour-histogram distance, KID and FID (in the standard FID Inception's pool features
  when its file is on this machine, :mod:`gancr.metrics.inception`; otherwise, labelled a
  fallback, in the chosen encoder's pooled features);
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

Modules: :mod:`~gancr.evaluation.evaluator` (:func:`evaluate`), :mod:`~gancr.evaluation.image_sets`
(image sets and the square views features see; resizing is :mod:`gancr.data.resize`), :mod:`~gancr.evaluation.models` (what is evaluated, the feature
encoder), :mod:`~gancr.evaluation.stats` (set statistics), :mod:`~gancr.evaluation.tables`
(the metric table, JSON) and :mod:`~gancr.evaluation.report` (``gancr report``: an HTML page
of a run).

Example:
    >>> result = evaluate("runs/quick", "builtin:holdout", "builtin:cartoon")  # doctest: +SKIP
    >>> result["metrics"]["content/ssim"]["value"]  # doctest: +SKIP
    0.62
    >>> print(format_table(result))  # doctest: +SKIP
"""

from gancr.evaluation.evaluator import EvalOptions, evaluate
from gancr.evaluation.models import DEFAULT_ENCODER, ENCODER_SEED, parse_encoder
from gancr.evaluation.tables import (
    METRICS,
    MetricSpec,
    format_table,
    markdown_table,
    metric_docs_markdown,
    table_rows,
    write_json,
)

__all__ = [
    "DEFAULT_ENCODER",
    "ENCODER_SEED",
    "METRICS",
    "MetricSpec",
    "evaluate",
    "EvalOptions",
    "format_table",
    "markdown_table",
    "metric_docs_markdown",
    "table_rows",
    "parse_encoder",
    "write_json",
]
