"""The figures of docs/performance.md, generated from the JSON files of ``gancr bench speed --json``.

``benchmarks/gpu_check.sh`` and ``benchmarks/cpu_check.sh`` write one file per run into a
folder per machine, ``docs/benchmarks/<machine>/<run>.json``; then

    python -m gancr.bench.figures --write               # rewrite the tables of docs/performance.md
    python -m gancr.bench.figures --summary A.json ...  # one table of some runs, on the console

The tables sit in docs/performance.md between the two marker lines below; tests/test_docs.py
fails when they differ from what this module generates. Each machine's section names the
card (or CPU), the torch version, the date and every command. Only the newest dated folder of
each kind (CUDA, CPU) is current: older ones, other cards, and files written before the JSON
recorded a date are marked stale, kept for comparison.

No torch here: it reads JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gancr.storage.files import atomic_write_text
from gancr.text import text_table

__all__ = ["BEGIN", "END", "load", "summary", "markdown", "current_block", "main"]

BEGIN = "<!-- BEGIN GENERATED FIGURES: python -m gancr.bench.figures --write -->"
END = "<!-- END GENERATED FIGURES -->"
REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "docs" / "benchmarks"
PERFORMANCE_MD = REPO / "docs" / "performance.md"


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The results in ``paths``, each with ``"file"`` (its path) added."""
    results = []
    for path in paths:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        result["file"] = Path(path)
        results.append(result)
    return results


def mode(result: dict[str, Any]) -> str:
    """How the step ran: eager, compiled, CUDA graphs (``compile: reduce-overhead``), max-autotune."""
    compile_ = result.get("compile", False)
    if compile_ in (True, "default"):
        return "compiled"
    return {False: "eager", None: "eager", "reduce-overhead": "CUDA graphs"}.get(compile_, str(compile_))


def _ratio(result: dict[str, Any], side: str) -> str:
    """gancr / ``side``: the median, with the smallest and largest ratio of the repeats when recorded."""
    ratio = result.get("ratios", {}).get(side)
    if ratio is None:
        return "-"
    spread = result.get("ratio_spread", {}).get(side)
    if spread is None:
        return f"{ratio:.2f}x"
    return f"{spread['median']:.2f}x ({spread['min']:.2f}-{spread['max']:.2f})"


def _side(result: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in result["rows"] if r["name"] == name), None)


PLAIN, MATCHED = "hand-written, plain", "hand-written, gancr's settings"


def _row(result: dict[str, Any]) -> list[str]:
    gancr = result["rows"][0]
    plain, matched = _side(result, PLAIN), _side(result, MATCHED)
    ops = str(gancr["ops_per_step"]) + ("" if matched is None else f" / {matched['ops_per_step']}")
    first = f"{gancr['first_step_s']:.1f}" + ("" if matched is None else f" / {matched['first_step_s']:.1f}")
    return [Path(result["file"]).stem, f"{Path(result['spec']).stem}, {result['size']}, {result['batch']}",
            mode(result), f"{gancr['images_per_s']:.1f}",
            "-" if plain is None else f"{plain['images_per_s']:.1f}",
            "-" if matched is None else f"{matched['images_per_s']:.1f}",
            _ratio(result, PLAIN), _ratio(result, MATCHED), ops, first]


HEADER = ("run", "spec, size, batch", "mode", "gancr img/s", "by hand, plain", "by hand, same settings",
          "gancr / plain", "gancr / same settings", "ops/step (gancr / by hand)", "first step s (gancr / by hand)")


def _latencies(result: dict[str, Any]) -> str:
    lat = result.get("inference_ms") or {}
    return ", ".join(f"{k} {v:.1f} ms" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in lat.items())


def summary(results: list[dict[str, Any]]) -> str:
    """One console table of ``results`` (what the check scripts print at their end)."""
    if not results:
        return "no results"
    lines = [f"{results[0]['device_name']}, torch {results[0]['torch']}"]
    lines += text_table(HEADER, [_row(r) for r in results], right=range(3, len(HEADER)))
    lines += [f"{Path(r['file']).stem} inference, batch 1: {_latencies(r)}" for r in results if _latencies(r)]
    lines.append("ratios: the median of the interleaved repeats (the smallest and largest in brackets); "
                 "above 1 is gancr faster")
    return "\n".join(lines)


def _groups(results: list[dict[str, Any]], root: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """Results by machine folder; files directly in ``root`` by card and torch version."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        folder = Path(r["file"]).parent
        key = folder.name if folder.resolve() != root.resolve() else f"{r['device_name']}|{r['torch']}"
        groups.setdefault(key, []).append(r)
    return sorted(groups.items())


def _kind(result: dict[str, Any]) -> str:
    return "CUDA" if str(result["device"]).startswith("cuda") else "CPU"


def markdown(results: list[dict[str, Any]] | None = None, root: Path | None = None) -> str:
    """The generated block of docs/performance.md (markers included): ``results``, by default
    every JSON file under ``root`` (docs/benchmarks/), by machine folder."""
    root = FIGURES if root is None else root
    if results is None:
        results = load(sorted(root.rglob("*.json")))
    groups = _groups(results, root)
    newest: dict[str, str] = {}
    for _, rs in groups:
        dates = [r["date"] for r in rs if r.get("date")]
        if dates:
            kind = _kind(rs[0])
            newest[kind] = max(newest.get(kind, ""), max(dates))
    sections: list[tuple[tuple[bool, bool], str]] = []
    for _, rs in groups:
        first = rs[0]
        kind = _kind(first)
        dates = sorted(r["date"] for r in rs if r.get("date"))
        if not dates:
            state, why = "stale", "Written before the figures recorded their date and commands; kept for comparison."
        elif dates[-1] != newest[kind]:
            state, why = "stale", f"Older than the newest {kind} figures; kept for comparison."
        else:
            state, why = "current", ""
        when = f"{dates[0][:10]}" if dates else "date not recorded"
        lines = [f"### {first['device_name']} (torch {first['torch']}), {when}: {state}", ""]
        lines += [why, ""] if why else []
        table = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        table += ["| " + " | ".join(_row(r)) + " |" for r in sorted(rs, key=lambda r: str(r["file"]))]
        lines += table + [""]
        for r in sorted(rs, key=lambda r: str(r["file"])):
            if _latencies(r):
                lines.append(f"- `{Path(r['file']).stem}`, inference of the generator, batch 1: {_latencies(r)}")
        commands = [r["command"] for r in sorted(rs, key=lambda r: str(r["file"])) if r.get("command")]
        if commands:
            lines += ["", "```bash", *commands, "```"]
        else:
            lines += ["- The commands were not recorded with these figures."]
        sections.append(((state != "current", kind != "CUDA"), "\n".join(lines).rstrip()))
    body = [text for _, text in sorted(sections, key=lambda s: s[0])]  # current first, CUDA before CPU
    return "\n".join([BEGIN, "", *(f"{text}\n" for text in body), END]) + "\n"


def current_block(text: str) -> str:
    """The generated block of ``text`` (docs/performance.md), markers included."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end] + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gancr.bench.figures", description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="rewrite the tables of docs/performance.md")
    p.add_argument("--summary", nargs="+", type=Path, metavar="JSON", help="print one table of these runs")
    args = p.parse_args(argv)
    if args.summary:
        print(summary(load(args.summary)))
        return 0
    block = markdown()
    if not args.write:
        print(block, end="")
        return 0
    text = PERFORMANCE_MD.read_text(encoding="utf-8")
    atomic_write_text(PERFORMANCE_MD, text.replace(current_block(text).rstrip("\n"), block.rstrip("\n")))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
