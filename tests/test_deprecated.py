"""Import paths of gancr 0.1 that moved: each still works for one release, with a DeprecationWarning.

One test per shim checks that it warns and re-exports the new objects; a last test checks that
nothing else in the project (gancr, tests, docs, examples, plugins, benchmarks) uses an old path.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

import gancr

ROOT = Path(__file__).resolve().parent.parent

#: old module -> (new module, names it re-exports)
MODULE_SHIMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gancr.report": ("gancr.evaluation.report", ("write_report", "read_metrics", "ReportError", "MAX_SAMPLES")),
    "gancr.strength": ("gancr.inference.strength", ("Alpha", "StrengthBlend", "check_alpha")),
    "gancr.tiling": ("gancr.inference.tiling", (
        "TileLayout", "tile_layout", "axis_windows", "frozen_norm_stats", "tile_statistics", "tiled_forward",
        "DEFAULT_STATS_TILES", "default_overlap", "reduction_of")),
    "gancr.speed": ("gancr.bench.speed", ("bench_speed", "find_reference", "format_table", "PEAK_BF16", "main")),
    "gancr.export": ("gancr.inference.export", (
        "FORMATS", "DEFAULT_OPSET", "ExportableGenerator", "ExportResult", "export_generator", "export_onnx",
        "export_torchscript", "export_safetensors", "min_input_size")),
}

#: (old module, name) -> (new module, name): names that moved out of a module that stays
ATTRIBUTE_SHIMS: dict[tuple[str, str], tuple[str, str]] = {
    **{("gancr.training.checkpoint", n): ("gancr.runs", n) for n in (
        "atomic_write", "atomic_write_text", "checkpoint_path", "save_checkpoint", "load_checkpoint",
        "list_checkpoints", "latest_checkpoint", "load_latest_checkpoint", "prune_checkpoints",
        "save_generator", "read_generator_file", "CHECKPOINT_VERSION")},
    ("gancr.training.parts", "resolve_device"): ("gancr.devices", "resolve_device"),
    ("gancr.training.parts", "resolve_precision"): ("gancr.devices", "resolve_precision"),
    ("gancr.metrics", "evaluate"): ("gancr.evaluation", "evaluate"),
}


def _fresh_import(name: str):
    """Import ``name`` anew, so that its module-level warning is raised again."""
    sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning, match=re.escape(name)):
        return importlib.import_module(name)


def test_gancr_build_module_path_warns_and_stays_the_function():
    from gancr import builder, trio

    sys.modules.pop("gancr.build", None)
    with pytest.warns(DeprecationWarning, match="gancr.build"):
        from gancr.build import ContentNet, Generator, Losses, Trio, build_component, build_losses
    assert (build_component, build_losses) == (builder.build_component, builder.build_losses)
    assert (Trio, Generator, ContentNet, Losses) == (trio.Trio, trio.Generator, trio.ContentNet, trio.Losses)
    # the old module path does not hide the function: gancr.build is still build(spec)
    assert gancr.build is builder.build and sys.modules["gancr.build"] is builder.build
    assert gancr.build.build_component is build_component


def test_summarize_spec_warns_and_is_spec_summary():
    from gancr.cli import summarize_spec

    spec = gancr.load_spec(ROOT / "examples" / "quickstart.yaml")
    with pytest.warns(DeprecationWarning, match="spec.summary"):
        assert summarize_spec(spec) == spec.summary()


@pytest.mark.parametrize("old", sorted(MODULE_SHIMS))
def test_moved_module_warns_and_reexports(old):
    new, names = MODULE_SHIMS[old]
    module = _fresh_import(old)
    target = importlib.import_module(new)
    for name in names:
        assert getattr(module, name) is getattr(target, name), f"{old}.{name}"


@pytest.mark.parametrize("old,name", sorted(ATTRIBUTE_SHIMS))
def test_moved_name_warns_and_is_the_new_object(old, name):
    new, new_name = ATTRIBUTE_SHIMS[(old, name)]
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old}.{name}")):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), new_name)


def _project_files() -> list[Path]:
    files = []
    for folder in ("gancr", "tests", "docs", "examples", "plugins", "benchmarks"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".sh") and p.is_file()]
    return files + [ROOT / "README.md"]


def test_nothing_in_the_project_uses_an_old_path():
    old_modules = ["gancr.build", *MODULE_SHIMS]
    pattern = re.compile(
        r"(from\s+(%s)\s+import|import\s+(%s)\b|python3?\s+-m\s+(%s)\b)"
        % (("|".join(map(re.escape, old_modules)),) * 3)
    )
    shims = {ROOT / (m.replace(".", "/") + ".py") for m in old_modules}
    old_names = re.compile(r"\bsummarize_spec\b")
    moved = {}
    for old, name in ATTRIBUTE_SHIMS:
        moved.setdefault(old, []).append(name)
    attribute_patterns = {
        old: re.compile(r"(from\s+%s\s+import\s+[^#]*\b(%s)\b|%s\.(%s)\b)"
                        % (re.escape(old), "|".join(names), re.escape(old), "|".join(names)))
        for old, names in moved.items()
    }
    found = []
    for path in _project_files():
        if path in shims or path == Path(__file__).resolve():
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if (pattern.search(line) or (old_names.search(line) and module != "gancr.cli")
                    or any(p.search(line) for old, p in attribute_patterns.items() if old != module)):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "old import paths in use:\n" + "\n".join(found)
