"""``gancr report RUN_DIR``: one HTML page about a training run, with its plots as PNGs next to it.

The page shows, from the run directory that :class:`~gancr.training.Trainer` writes:

- a summary: the spec's parts, steps done, stages, the generator file;
- loss curves per stage (``metrics.jsonl``): the aggregate losses (generator objective,
  style, content, reconstruction, discriminator) and, below, every individual term;
- the balancer's weights (``weight/*``) and the learning rates over the steps;
- throughput: images per second over the steps, and per stage (median) with wall time;
- the sample grids (``samples/step_*.png``: input | content-net reconstruction | stylised),
  up to eight, evenly spread over the run;
- the evaluation table, when ``RUN_DIR/eval.json`` (``gancr eval --json RUN_DIR/eval.json``)
  or the file given as ``eval_json`` exists;
- the resolved spec.

Plots need matplotlib (the ``report`` extra: ``pip install "gancr[report]"``); it is drawn
with the Agg backend, so no display is needed. The page has no scripts and loads nothing
from the network; it and its PNGs can be moved together.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gancr.errors import CheckpointError, GancrError
from gancr.evaluation.tables import table_rows
from gancr.storage import RunDir
from gancr.storage.files import atomic_write_bytes, atomic_write_text, check_output
from gancr.storage.reader import safetensors_header

__all__ = ["write_report", "read_metrics", "ReportError", "MAX_SAMPLES"]

#: Most sample grids shown (evenly spread over the run, the last one always included).
MAX_SAMPLES = 8

AGGREGATES = ("loss/generator", "loss/style", "loss/content", "loss/reconstruction", "loss/discriminator")


class ReportError(GancrError):
    """The run directory cannot be reported on (missing, no metrics), or matplotlib is missing."""


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ReportError(
            'gancr report draws its plots with matplotlib, which is not installed: pip install "gancr[report]"'
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``RUN_DIR/metrics.jsonl`` (a line cut by a kill is skipped), by step."""
    path = RunDir(run_dir).metrics_file
    if not path.is_file():
        raise ReportError(f"{run_dir} has no metrics.jsonl: is it a run directory written by `gancr train`?")
    rows = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    for line in lines:
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(row, dict) or _number(row.get("step")) is None:
            continue  # a line cut by a kill, or not a row gancr wrote
        stage = _number(row.get("stage", 1))
        row["stage"] = int(stage) if stage is not None and 1 <= stage < 1000 else 1
        rows.append(row)
    rows.sort(key=lambda r: float(r["step"]))
    return rows


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (strings, booleans, NaN, infinities, huge integers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def _stages(spec: Any) -> list[dict[str, Any]]:
    """The stages of a spec read from spec.yaml, whatever shape the file has."""
    training = spec.get("training") if isinstance(spec, dict) else None
    stages = training.get("stages") if isinstance(training, dict) else None
    return [s for s in stages if isinstance(s, dict)] if isinstance(stages, list) else []


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = _number(r.get(key))
        if v is not None:
            xs.append(float(r["step"]))
            ys.append(v)
    return xs, ys


def _smooth(ys: list[float], n: int) -> list[float]:
    """A centred rolling median over about n/40 points (none for short series).

    A median, not a mean, so a few spikes (a slow step, a loss outlier) do not bend the line,
    and centred, so the line does not lag or ramp up from the first value.
    """
    if n < 50:
        return ys
    import numpy as np

    half = max(2, n // 80)
    a = np.asarray(ys, dtype=float)
    padded = np.pad(a, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=1).tolist()


def _stage_names(spec: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[int, str]:
    names = {i + 1: f"stage {i + 1}: {s.get('name', '?')} ({s.get('steps', '?')} steps)"
             for i, s in enumerate(_stages(spec))}
    for r in rows:
        st = int(r.get("stage", 1))
        names.setdefault(st, f"stage {st}")
    return dict(sorted(names.items()))


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39", "#7b4173", "#3182bd")


def _colour(key: str, keys: list[str]) -> str:
    """The same colour for a series in every panel (its place among all keys of its kind)."""
    return _PALETTE[keys.index(key) % len(_PALETTE)] if key in keys else _PALETTE[0]


def _plot_lines(ax: Any, rows: list[dict[str, Any]], keys: list[str], label_prefix: str = "",
                smooth_long: bool = True) -> bool:
    """One line per key (same colour for a key in every panel); long noisy series smoothed."""
    from matplotlib.ticker import MaxNLocator

    drawn = False
    for key in keys:
        xs, ys = _series(rows, key)
        if not xs:
            continue
        smooth = _smooth(ys, len(ys)) if smooth_long else ys
        label = key[len(label_prefix):] if key.startswith(label_prefix) else key
        colour = _colour(key, keys)
        if smooth is not ys:
            ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(xs, smooth, color=colour, linewidth=1.4, label=label)
        else:
            ax.plot(xs, ys, color=colour, linewidth=1.4, marker="." if len(xs) < 20 else None, label=label)
        drawn = True
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return drawn


def _plot_losses(plt: Any, rows: list[dict[str, Any]], stages: dict[int, str], path: Path) -> Path:
    terms = sorted({k for r in rows for k in r if k.startswith("loss/") and k not in AGGREGATES})
    n = len(stages)
    fig, axes = plt.subplots(2, n, figsize=(5.2 * n, 7.0), squeeze=False)
    for col, (stage, title) in enumerate(stages.items()):
        part = [r for r in rows if int(r.get("stage", 1)) == stage]
        top, bottom = axes[0][col], axes[1][col]
        top.set_title(title, fontsize=10)
        if not _plot_lines(top, part, list(AGGREGATES), "loss/"):
            top.text(0.5, 0.5, "no logged steps", ha="center", va="center", transform=top.transAxes)
        top.set_ylabel("aggregate losses")
        if not _plot_lines(bottom, part, terms, "loss/"):
            bottom.text(0.5, 0.5, "no loss terms", ha="center", va="center", transform=bottom.transAxes)
        bottom.set_ylabel("loss terms")
        bottom.set_xlabel("step")
    return _finish(fig, list(axes.flat), path)


def _finish(fig: Any, axes: Any, path: Path) -> Path:
    """Grid and legends on ``axes``, then write ``fig`` to ``path`` and close it."""
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save_figure(fig, path)


def _save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _stage_bounds(ax: Any, rows: list[dict[str, Any]]) -> None:
    prev = None
    for r in rows:
        st = r.get("stage")
        if prev is not None and st != prev:
            ax.axvline(r["step"] - 0.5, color="gray", linestyle="--", linewidth=0.8)
        prev = st


def _plot_weights(plt: Any, rows: list[dict[str, Any]], path: Path) -> Path:
    weights = sorted({k for r in rows for k in r if k.startswith("weight/")})
    lrs = sorted({k for r in rows for k in r if k.startswith("lr/")})
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    if not _plot_lines(a, rows, weights, "weight/", smooth_long=False):
        a.text(0.5, 0.5, "no balancer weights logged", ha="center", va="center", transform=a.transAxes)
    a.set_title("balancer weights (w_c: content, w_g: style)", fontsize=10)
    if not _plot_lines(b, rows, lrs, "lr/", smooth_long=False):
        b.text(0.5, 0.5, "no learning rates logged", ha="center", va="center", transform=b.transAxes)
    b.set_title("learning rates", fontsize=10)
    for ax in (a, b):
        _stage_bounds(ax, rows)
        ax.set_xlabel("step")
    return _finish(fig, (a, b), path)


def _plot_throughput(plt: Any, rows: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(11, 3.2))
    if not _plot_lines(ax, rows, ["images_per_s"]):
        ax.text(0.5, 0.5, "no throughput logged", ha="center", va="center", transform=ax.transAxes)
    _stage_bounds(ax, rows)
    ax.set_title("throughput (images per second)", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path)


def _throughput_rows(rows: list[dict[str, Any]], stages: dict[int, str]) -> list[tuple[str, str, str, str]]:
    """(stage, logged steps, median images/s, wall time) per stage, then the whole run."""
    out = []

    def line(name: str, part: list[dict[str, Any]]) -> tuple[str, str, str, str]:
        rates = [x for r in part[1:] or part if (x := _number(r.get("images_per_s"))) is not None]
        times = [x for r in part if (x := _number(r.get("time"))) is not None]
        wall = f"{times[-1] - times[0]:.1f} s" if len(times) > 1 else "n/a"
        rate = f"{statistics.median(rates):.2f}" if rates else "n/a"
        return (name, str(len(part)), rate, wall)

    for stage, title in stages.items():
        part = [r for r in rows if int(r.get("stage", 1)) == stage]
        if part:
            out.append(line(title, part))
    out.append(line("whole run", rows))
    return out


def _pick_samples(samples: list[Path]) -> list[Path]:
    if len(samples) <= MAX_SAMPLES:
        return samples
    idx = sorted({round(i * (len(samples) - 1) / (MAX_SAMPLES - 1)) for i in range(MAX_SAMPLES)})
    return [samples[i] for i in idx]


def _table(header: list[str], rows: list[tuple[str, ...]] | list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _eval_section(result: dict[str, Any], source: Path) -> str:
    rows = table_rows(result)
    notes = []
    for key, entry in result.get("metrics", {}).items():
        if entry.get("note"):
            notes.append(f"{key}: {entry['note']}")
    f = result.get("features", {})
    for key in ("perceptual", "kid_fid", "content_net"):
        if key in f and f[key].get("description"):
            notes.append(f"{key} features: {f[key]['description']}")
    where = ", ".join(
        f"{k} {html.escape(str(result[k]['source']))}" for k in ("content", "style", "reference") if result.get(k)
    )
    return (
        f'<p>From <code>{html.escape(str(source))}</code> ({where}).</p>'
        + _table(["metric", "value", "better", "features"], rows, "eval")
        + "<ul class=notes>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
    )


def _generator_summary(run: RunDir) -> str:
    """The generator file's name, parameters and size, from its header (no tensor is read)."""
    path = run.generator_file
    if not path.is_file():
        return "not written yet (training did not finish)"
    try:
        header = safetensors_header(path, "generator file")
    except CheckpointError as exc:
        return f"{path.name} ({exc})"
    n = sum(math.prod(entry.get("shape") or ()) for key, entry in header.items()
            if key.startswith("generator/") and isinstance(entry, dict) and isinstance(entry.get("shape"), list))
    return f"{path.name} ({n / 1e6:.2f}M generator parameters, {path.stat().st_size / 1e6:.1f} MB)"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1180px;
       color: #1d232a; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; border-bottom: 1px solid #d0d7de;
padding-bottom: 4px; margin-top: 1.6em; }
img { max-width: 100%; border: 1px solid #e1e4e8; }
.samples img { min-width: 240px; image-rendering: pixelated; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; }
th { background: #f3f5f7; }
.meta td:first-child { font-weight: 600; }
.samples { display: flex; flex-wrap: wrap; gap: 14px; }
.samples figure { margin: 0; } figcaption { font-size: 0.85em; color: #57606a; }
.notes { font-size: 0.85em; color: #57606a; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; font-size: 0.85em; }
"""


def _read_spec(run: RunDir) -> tuple[dict[str, Any] | None, str, str]:
    """(the spec as data, its text, a one-line summary) of a run's spec.yaml, whatever the file holds."""
    if not run.spec_file.is_file():
        return None, "", ""
    try:
        text = run.spec_file.read_text(encoding="utf-8", errors="replace")
        data = run.spec()
    except (OSError, GancrError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, locals().get("text", ""), f"({reason})"
    try:
        from gancr.spec import load_spec

        return data, text, load_spec(data).summary()
    except GancrError as exc:  # e.g. a plugin component that is not installed here
        return data, text, f"(the spec does not load here: {str(exc).splitlines()[0]})"


def _samples_html(run: RunDir, folder: Path, stem: str) -> str:
    """The sample grids (up to :data:`MAX_SAMPLES`), copied next to the page, as figures."""
    copied = []
    for s in _pick_samples(run.samples()):
        target = folder / f"{stem}-sample-{s.name}"
        if s.resolve() != target.resolve():
            atomic_write_bytes(target, s.read_bytes())
        step = s.stem.split("_")[-1].lstrip("0") or "0"
        copied.append((target.name, step))
    return "".join(
        f'<figure><img src="{html.escape(name)}" alt="sample grid at step {step}">'
        f"<figcaption>step {step}</figcaption></figure>"
        for name, step in copied
    ) or "<p>No sample grids in samples/.</p>"


def _eval_html(run: RunDir, eval_json: str | os.PathLike | None) -> str:
    """The evaluation section: the table of ``eval_json`` (default ``RUN_DIR/eval.json``), or how to make one."""
    eval_path = Path(eval_json) if eval_json is not None else run.path / "eval.json"
    if eval_json is not None and not eval_path.is_file():
        raise ReportError(f"no evaluation file at {eval_path}")
    if not eval_path.is_file():
        return (
            "<p>No evaluation yet. Write one with <code>gancr eval --checkpoint "
            f"{html.escape(str(run.path))} --content DIR --style DIR --json {html.escape(str(run.path / 'eval.json'))}</code>.</p>"
        )
    try:
        return _eval_section(json.loads(eval_path.read_text(encoding="utf-8")), eval_path)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError) as exc:
        return f"<p>{html.escape(str(eval_path))} is not an evaluation written by gancr eval ({html.escape(str(exc))}).</p>"


def write_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    eval_json: str | os.PathLike | None = None,
) -> Path:
    """Write the HTML report of a run; returns the HTML file.

    Args:
        run_dir: a run directory (``metrics.jsonl``, ``spec.yaml``, ``samples/`` ...).
        out: the HTML file (default ``RUN_DIR/report/index.html``); its PNGs are written
            next to it as ``<stem>-losses.png``, ``<stem>-weights.png``,
            ``<stem>-throughput.png`` and ``<stem>-sample-step_N.png``.
        eval_json: an evaluation JSON to show (default ``RUN_DIR/eval.json`` when present).

    Raises:
        ReportError: not a run directory, or matplotlib is not installed.
    """
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise ReportError(f"no run directory at {run.path}")
    rows = read_metrics(run.path)
    if not rows:
        raise ReportError(f"{run.metrics_file} has no logged steps yet")
    plt = _matplotlib()
    html_path = check_output(Path(out) if out is not None else run.path / "report" / "index.html", what="the report")
    folder = html_path.parent
    stem = html_path.stem

    spec, spec_text, summary = _read_spec(run)
    stages = _stage_names(spec, rows)
    total = int(sum(_number(s.get("steps")) or 0 for s in _stages(spec))) or None

    losses = _plot_losses(plt, rows, stages, folder / f"{stem}-losses.png")
    weights = _plot_weights(plt, rows, folder / f"{stem}-weights.png")
    throughput = _plot_throughput(plt, rows, folder / f"{stem}-throughput.png")

    sample_html = _samples_html(run, folder, stem)
    eval_html = _eval_html(run, eval_json)
    last = rows[-1]
    meta = [
        ("run directory", str(run.path.resolve())),
        ("spec", summary or "(no spec.yaml)"),
        ("steps logged", f"{last['step']}" + (f" of {total}" if total else "")),
        ("generator", _generator_summary(run)),
        ("report written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    from gancr import __version__

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>gancr report: {html.escape(run.path.resolve().name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Training report: {html.escape(run.path.resolve().name)}</h1>
<p class="notes">gancr {html.escape(__version__)}</p>
{_table(["", ""], meta, "meta").replace("<thead><tr><th></th><th></th></tr></thead>", "")}
<h2 id="losses">Loss curves per stage</h2>
<p class="notes">Top: the generator side's objective and its parts (style, content, reconstruction) and the
discriminator's loss. Bottom: every logged term. Long runs show the raw values faintly and a rolling median.</p>
<img src="{html.escape(losses.name)}" alt="loss curves per stage">
<h2 id="weights">Balancer weights and learning rates</h2>
<img src="{html.escape(weights.name)}" alt="balancer weights and learning rates over the steps">
<h2 id="throughput">Throughput</h2>
<img src="{html.escape(throughput.name)}" alt="images per second over the steps">
{_table(["stage", "logged steps", "median images/s", "wall time"], _throughput_rows(rows, stages), "throughput")}
<h2 id="samples">Sample grids</h2>
<p class="notes">Each row: input | content-net reconstruction | stylised output (fixed inputs for the whole run).</p>
<div class="samples">{sample_html}</div>
<h2 id="eval">Evaluation</h2>
{eval_html}
<h2 id="spec">Spec</h2>
<details><summary>spec.yaml</summary><pre>{html.escape(spec_text or "(no spec.yaml)")}</pre></details>
</body></html>
"""
    return atomic_write_text(html_path, page)
