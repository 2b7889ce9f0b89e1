"""The README's two commands for a fresh machine, and CI running exactly them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## On a fresh machine"):]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)[:2]


def test_ci_installs_as_the_readme_says_and_runs_its_test_command():
    install, test = _bash_blocks()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = [line.strip() for line in ci.splitlines()]
    steps = [s.strip() for s in install.split("&&")]
    assert steps[0].startswith("python3 -m venv .venv") and steps[1] == ". .venv/bin/activate"
    pip_steps = [s for s in steps if s.startswith("pip install")]
    assert pip_steps, "the README installs nothing"
    for step in pip_steps:
        assert step in ci_lines, f".ci/run does not run the README's {step!r}"
    main_job = steps[-1]
    assert main_job.startswith("gancr train examples/") and (ROOT / main_job.split()[2]).is_file()
    pytest_command = test.split("&&")[-1].strip()
    assert pytest_command.startswith("python -m pytest")
    assert pytest_command in ci_lines, ".ci/run does not run the README's test command"


def test_the_readme_test_command_covers_every_test_folder():
    _, test = _bash_blocks()
    folders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "plugins").glob("*/tests")]
    assert "tests" in test.split()
    assert folders and all(f in test or "plugins/*/tests" in test for f in folders)
