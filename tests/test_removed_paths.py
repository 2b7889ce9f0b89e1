"""Paths of gancr 0.1 that moved in 0.2 are gone, not redirected: there are no deprecation shims
while the version is 0.x (DESIGN.md). Each old path fails plainly, CHANGELOG.md names its new
place, and nothing in the project (gancr, tests, docs, examples, plugins, benchmarks) uses it.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch

import gancr

ROOT = Path(__file__).resolve().parent.parent

#: old module -> its new place (as CHANGELOG.md names it)
MOVED_MODULES: dict[str, str] = {
    "gancr.build": "gancr.builder",
    "gancr.report": "gancr.evaluation.report",
    "gancr.strength": "gancr.inference.strength",
    "gancr.tiling": "gancr.inference.tiling",
    "gancr.speed": "gancr.bench.speed",
    "gancr.export": "gancr.inference.export",
    "gancr._deprecated": "",
    "gancr.files": "gancr.storage.files",
    "gancr.integrity": "gancr.storage.integrity",
    "gancr.weights": "gancr.storage.pretrained",
    "gancr.runs": "gancr.storage.records",
    "gancr.catalog": "gancr.cli.catalog",
    "gancr.scaffold": "gancr.cli.scaffold",
    "gancr.requirements": "gancr.spec.requirements",
    "gancr.resources": "gancr.devices",
    "gancr.data.images": "gancr.data.image_files",
    "gancr.evaluation.images": "gancr.evaluation.image_sets",
    "gancr.training.runlog": "gancr.training.metrics_log",
    "gancr.training.parts": "gancr.training.optimizers",
    "gancr.training.checkpoint": "gancr.training.resume",
}

#: (old module, name) -> its new place: names that left a module that stays
MOVED_NAMES: dict[tuple[str, str], str] = {
    ("gancr.builder", "describe_component"): "gancr.builder.component_label",
    ("gancr.components.base", "Frozen"): "gancr.components.base.Freezable",
    ("gancr.components.base", "KeepsEncoderFrozen"): "gancr.components.base.freeze",
    ("gancr.training.Trainer", "settle"): "gancr.training.TrainingStep.settle",
    ("gancr.training.Trainer", "base_lr"): "gancr.training.optimizers.LearningRates",
    ("gancr.metrics", "evaluate"): "gancr.evaluation.evaluate",
    ("gancr.cli", "summarize_spec"): "Spec.summary",
    ("gancr.inference", "resolve_weights_path"): "gancr.storage.read_run",
    ("gancr.training.Trainer", "state_dict"): "Trainer.checkpoint",
}


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_a_moved_module_is_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


@pytest.mark.parametrize("old,name", sorted(MOVED_NAMES))
def test_a_moved_name_is_gone(old, name):
    try:
        owner = importlib.import_module(old)
    except ModuleNotFoundError:  # a class: gancr.training.Trainer
        parent, _, attribute = old.rpartition(".")
        owner = getattr(importlib.import_module(parent), attribute)
    assert not hasattr(owner, name)


def test_gancr_build_is_the_function():
    from gancr import builder

    assert gancr.build is builder.build


def test_stylize_takes_no_content_net(tmp_path):
    from gancr.inference import stylize, stylize_tensor

    generator = gancr.build({"model": {"generator": {"encoder": {"name": "conv", "widths": [4, 8]}}}}).generator
    with pytest.raises(TypeError, match="content_net"):
        stylize_tensor(generator.eval(), torch.rand(3, 32, 32), content_net=None)
    with pytest.raises(TypeError, match="content_net"):
        stylize([str(tmp_path)], out_dir=tmp_path / "out", generator=generator.eval(), content_net=None)


def test_the_changelog_names_every_move():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {gancr.__version__}" in text
    for old, new in MOVED_MODULES.items():
        assert f"`{old}`" in text, old
        assert not new or f"`{new}`" in text, new
    for (old, name), new in MOVED_NAMES.items():
        assert f"`{old}.{name}`" in text and f"`{new}`" in text, (old, name)


def _project_files() -> list[Path]:
    files = []
    for folder in ("gancr", "tests", "docs", "examples", "plugins", "benchmarks"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".sh") and p.is_file()
                  and "build" not in p.relative_to(ROOT).parts]
    return files + [ROOT / "README.md"]


def test_nothing_in_the_project_uses_an_old_path():
    old_modules = [m for m in MOVED_MODULES if m != "gancr.build"]  # gancr.build is the function
    names = "|".join(map(re.escape, old_modules))
    pattern = re.compile(rf"(from\s+({names})\s+import|import\s+({names})\b|python3?\s+-m\s+({names})\b"
                         r"|from\s+gancr\.build\s+import|import\s+gancr\.build\b)")
    moved: dict[str, list[str]] = {}
    for old, name in MOVED_NAMES:
        moved.setdefault(old, []).append(name)
    attribute_patterns = [
        re.compile(r"(from\s+%s\s+import\s+[^#]*\b(%s)\b|%s\.(%s)\b)"
                   % (re.escape(old), "|".join(names), re.escape(old), "|".join(names)))
        for old, names in moved.items()
    ]
    found = []
    for path in _project_files():
        if path == Path(__file__).resolve():
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line) or any(p.search(line) for p in attribute_patterns):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "old import paths in use:\n" + "\n".join(found)
