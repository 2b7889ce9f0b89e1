"""docs/plugins.md ("Writing a plugin") works as written: its steps run for real.

The page's ``shell`` blocks run in order in a temporary folder: ``gancr new-plugin`` writes
the package, ``pip install`` builds and installs it (into a target folder put on the path,
not into the test environment), ``gancr components``/``describe`` list it, the scaffold's own
tests pass under pytest, and the page's spec (a ``yaml`` block whose first line names its
file) validates and trains two steps with the plugin's component. The page's python
excerpts of the generated files are checked against the files, line by line.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gancr import plugins
from gancr.cli import main

from pluginkit import pip_install_target
from trainkit import TINY_OVERRIDES, image_dirs, read_metrics  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)

#: What the guide's spec is shrunk to for the test: two joint steps (which use the plugin's
#: content loss), tiny networks, the test's images.
SHRINK = (
    *TINY_OVERRIDES,
    "model.generator.encoder.widths=[8, 16]",
    "model.content_net.encoder.widths=[8, 16]",
    "training.stages=[{name: joint, steps: 2}]",
)


def blocks() -> list[tuple[str, str]]:
    """(language, text) of the guide's fenced blocks, in order."""
    return [(m[1], m[2]) for m in _FENCE.finditer(GUIDE.read_text(encoding="utf-8"))]


def shell_commands() -> list[str]:
    return [line.strip() for lang, text in blocks() if lang == "shell" for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_guide_has_every_step():
    commands = [shlex.split(c)[:2] for c in shell_commands()]
    for step in (["gancr", "new-plugin"], ["pip", "install"], ["gancr", "components"],
                 ["gancr", "validate"], ["gancr", "train"], ["pytest", "gancr-lowpass/tests"]):
        assert step in commands, f"docs/plugins.md lost the step {' '.join(step)}"


def test_the_guide_runs(tmp_path, image_dirs, capsys, monkeypatch):
    content, style = image_dirs
    site = tmp_path / "site"
    monkeypatch.chdir(tmp_path)
    ran: list[str] = []
    for lang, text in blocks():
        first = text.splitlines()[0] if text.strip() else ""
        if lang == "yaml" and re.match(r"#\s*\S+\.ya?ml\s*$", first):
            (tmp_path / first.lstrip("# ").strip()).write_text(text, encoding="utf-8")
            continue
        if lang != "shell":
            continue
        for command in [c for c in text.splitlines() if c.strip() and not c.lstrip().startswith("#")]:
            words = shlex.split(command, comments=True)
            ran.append(" ".join(words[:2]))
            if words[:2] == ["pip", "install"]:
                # the same install, into a folder the rest of the test puts on the path
                folders = [w for w in words[2:] if not w.startswith("-")]
                pip_install_target(site, *folders)
                monkeypatch.syspath_prepend(str(site))
                monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
                importlib.invalidate_caches()
                plugins.reset()  # the next use loads the new entry point
            elif words[0] == "pytest":
                result = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *words[1:]],
                    capture_output=True, text=True, timeout=300,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                assert result.returncode == 0, result.stdout + result.stderr
                assert re.search(r"\b2 passed\b", result.stdout), result.stdout  # the contract and its own test
            elif words[:2] == ["gancr", "train"]:
                argv = [*words[1:], "--quiet", *[a for o in SHRINK for a in ("--set", o)],
                        "--set", f"data.content={content}", "--set", f"data.style={style}"]
                code, out, err = run(capsys, argv)
                assert code == 0, err
                metrics = read_metrics(tmp_path / "runs" / "lowpass")
                assert [m["step"] for m in metrics] == [1, 2]
                assert all("loss/content/lowpass" in m for m in metrics)
            else:
                assert words[0] == "gancr", f"docs/plugins.md: a step the test does not know: {command}"
                code, out, err = run(capsys, words[1:])
                assert code == 0, f"`{command}` exited {code}: {err}"
                check_output(words[1:], out, tmp_path)
    assert ran[0] == "gancr new-plugin" and "gancr train" in ran


def check_output(argv: list[str], out: str, root: Path) -> None:
    """What each documented command must show."""
    if argv[0] == "new-plugin":
        files = {str(p.relative_to(root / "gancr-lowpass")) for p in (root / "gancr-lowpass").rglob("*") if p.is_file()}
        for line in out.splitlines():
            if line.startswith("  ") and not line.strip().startswith(("pip", "gancr", "pytest")):
                assert line.strip() in files
        check_excerpts(root / "gancr-lowpass")
    elif argv[0] == "components":
        (row,) = [line for line in out.splitlines() if line.split()[:2] == ["content_loss", "lowpass"]]
        assert "lowpass (gancr-lowpass 0.1.0)" in row and "Low-pass content" in row
    elif argv[0] == "describe":
        assert "plugin: lowpass (gancr-lowpass 0.1.0)" in out and "scale" in out and "distance" in out
    elif argv[0] == "validate":
        assert ": valid." in out and "content lowpass" in out


def check_excerpts(package: Path) -> None:
    """Each python block of the guide that names a generated file shows that file's lines, in order."""
    checked = 0
    for lang, text in blocks():
        lines = text.splitlines()
        m = re.match(r"#\s*((?:src|tests)/\S+\.py)", lines[0]) if lang == "python" and lines else None
        if not m:
            continue
        file_lines = iter((package / m[1]).read_text(encoding="utf-8").splitlines())
        for line in lines[1:]:
            assert any(line == f for f in file_lines), f"docs/plugins.md shows a line {m[1]} does not have: {line!r}"
        checked += 1
    assert checked == 3
