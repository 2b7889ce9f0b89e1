"""Running a docs page's shell commands as a reader would, in one folder, in the page's order.

Every ``gancr`` command of a ``bash`` or ``console`` block runs, in process, in the page's
folder (after the page's earlier python and shell blocks), made fast but not different:
training commands get the tiny overrides of :data:`trainkit.SHRINK` (and ``--max-steps 1``
for any ``--max-steps``), ``gancr eval`` small views. Files a page presumes the reader has
(``my_photo.jpg``, ``photos/`` ...) are made first (:data:`PLACEHOLDERS`). Any other command
must be in :data:`SKIPPED` with the reason it does not run here; an unknown one fails the test.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from pathlib import Path

import torch

from trainkit import SHRINK, shrink_overrides, write_folder, write_image

#: Commands that do not run in the docs test: (pattern of the command, why).
SKIPPED: list[tuple[str, str]] = [
    (r"^(pip|python3 -m venv|\.) ", "installs packages: the test runs in the installed environment"),
    (r"^gancr bench ", "trains several specs for minutes; tests/test_bench_quality.py and test_bench_speed run it"),
    (r"^torchrun ", "several processes or GPUs; tests/test_distributed.py runs torchrun"),
    (r"^tensorboard ", "a server"),
    (r"^mkdocs ", "tests/test_site.py builds the site (serve is a server)"),
    (r"^python docs/build_report_screenshot\.py", "needs Chromium; tests/test_report.py runs the same check"),
    (r"^benchmarks/fetch_wheels\.sh", "downloads wheels"),
    (r"^python benchmarks/supervised_bound\.py", "trains for minutes; tests/test_bench_quality.py runs it tiny"),
    (r"^gancr \w+ .*\.\./shared/data/", "the repository's example photographs and paintings beside a clone "
     "(../shared/data), which the tests do without; docs/painting.md runs the same commands on photos/ first"),
    (r"^python docs/make_gallery\.py", "needs gancr bench painting's runs on ../shared/data (an hour and more); "
     "tests/test_bench_painting.py runs the script on a tiny bench run"),
]

#: Pages that continue from the quickstart's run; each says so ("... `runs/quickstart`, the run
#: of the [quickstart](quickstart.md)"), and starts with a copy of it (trained once, tiny).
CONTINUES_THE_QUICKSTART = ("deploying.md", "evaluation.md")

#: Files and folders a page presumes its reader has (the photos they stylise, weights they downloaded).
IMAGE_FILES = ("my_photo.jpg", "photo.jpg", "big_photo.jpg", "painting.jpg")
IMAGE_FOLDERS = ("my_folder", "holidays", "more_photos", "photos", "cartoons", "targets", "home/photos",
                 "home/paintings")


def make_placeholders(folder: Path) -> None:
    for i, name in enumerate(IMAGE_FILES):
        write_image(folder / name, h=72 if name.startswith("big") else 48, w=96 if name.startswith("big") else 64, seed=i)
    for i, name in enumerate(IMAGE_FOLDERS):
        write_folder(folder / name, 2, seed=10 + i, flat=name in ("cartoons", "home/paintings"))


def _vgg19_file(path: Path) -> None:
    """A VGG19 feature file of torchvision's layout (random weights) up to relu4_1, as `weights:` takes."""
    from gancr.components.encoders import VGG19Encoder

    torch.save(VGG19Encoder(layer="relu4_1").layers.state_dict(), path)


def commands(text: str, lang: str) -> list[str]:
    """The commands of a block: ``$ `` lines of a console block; a bash block's lines (continuations
    joined, comments dropped), split at ``&&`` and ``;``."""
    if lang == "console":
        return [line[2:].strip() for line in text.splitlines() if line.startswith("$ ")]
    out = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = next((i for i, w in enumerate(words) if w in ("&&", ";")), len(words))
            if words[:cut]:
                out.append(shlex.join(words[:cut]))
            words = words[cut + 1:]
    return out


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIPPED:
        if re.match(pattern, command):
            return reason
    return None


def _specs_of(argv: list[str]) -> list[str]:
    specs = []
    for word in argv[1:]:
        if word.startswith("-"):
            break
        specs.append(word)
    return specs


def fast_argv(argv: list[str], folder: Path) -> list[str]:
    """The command made fast: tiny training, small evaluation views; ``~`` is the page's home."""
    argv = [str(folder / "home" / w[2:]) if w.startswith("~/") else w for w in argv]
    argv = [w.replace("=~/", f"={folder / 'home'}/") for w in argv]
    if argv[0] == "train":
        if "--max-steps" in argv:
            argv[argv.index("--max-steps") + 1] = "1"
        extra = []
        for spec in _specs_of(argv):
            name = Path(spec).name
            if spec.startswith("examples/") and name in SHRINK:
                extra = shrink_overrides(name)
        argv += [a for o in extra for a in ("--set", o)] + ["-q"]
    if argv[0] == "eval":
        argv += ["--max-size", "64", "--feature-size", "32"]
        if any("vgg19.pth" in w for w in argv) and not (folder / "vgg19.pth").exists():
            _vgg19_file(folder / "vgg19.pth")
    return argv


def run_gancr(argv: list[str]) -> tuple[int, str, str]:
    from gancr.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?")
_PROGRESS = re.compile(r"(N%\|)|(: (step|image) N/N \()")


def normalised(text: str) -> list[str]:
    """Lines without numbers (``N``), spacing or progress lines, sorted (stdout and stderr interleave)."""
    lines = []
    for line in text.splitlines():
        line = " ".join(_NUMBER.sub("N", line).split())
        if line and not _PROGRESS.search(line):
            lines.append(line)
    return sorted(lines)


def same_output(expected: str, got: str) -> bool:
    """Whether a command printed what the page shows, numbers aside (``...`` matches anything)."""
    want, have = normalised(expected), normalised(got)
    if len(want) != len(have):
        return False
    return all(re.fullmatch(re.escape(w).replace(r"\.\.\.", ".*"), h) for w, h in zip(want, have))


def in_folder(folder: Path) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def chdir():
        before, home = Path.cwd(), os.environ.get("HOME")
        os.chdir(folder)
        os.environ["HOME"] = str(folder / "home")
        try:
            yield
        finally:
            os.chdir(before)
            if home is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = home

    return chdir()
