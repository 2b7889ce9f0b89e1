"""The fault corpus: one row per thing a user can do wrong (or be given), and what gancr must do.

Each row is a real ``gancr`` command on real files: bad specs, bad images, bad paths and
hostile files (pickles that would run code, safetensors with malformed or huge headers,
deeply nested metadata, YAML alias bombs, exported models in the wrong place). Each asserts
the exit code (2: refused), a substring of the message that names the culprit, no
traceback, a message of one paragraph, that it ended in time (rows with ``seconds``), and
that nothing was written or lost that should not be: the shared good files (a trained run,
photos, a spec, exported models) keep their bytes, outputs of a refused command do not
appear, and no code ran (the marker file a hostile pickle would create is absent).

To add a row, append a :class:`Case` to :data:`CASES`: the command (``{placeholders}`` name
the shared files and the row's own folder), the message, and any bad file it needs from
:data:`faultmakers.MAKERS` (add a maker there for a new kind of file). Most rows run in this
process through ``gancr.cli.main``; ``subprocess=True`` runs the installed command.

Placeholders: ``{run}`` a finished tiny run, ``{gen}`` its generator.safetensors, ``{ckpt}``
its newest checkpoint, ``{photos}`` a folder of photographs, ``{photo}`` one of them,
``{styles}`` a folder of style images, ``{spec}`` a good tiny spec, ``{onnx}``/``{ts}`` its
exported models, ``{tmp}`` the row's own folder, ``{denied}`` a place not even root may write
(``/sys``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import gancr
from gancr.storage import RunDir
from gancr.training import Trainer

from faultkit import snapshot, temporary_files
from faultmakers import MAKERS, MARKER
from inferencekit import run_cli
from trainkit import gancr_command, image_dirs, subprocess_env, tiny_spec  # noqa: F401 - image_dirs is a fixture


@dataclass(frozen=True)
class Case:
    """One row: ``gancr ARGV`` exits with ``code``, its stderr holds ``message``.

    Attributes:
        id: what the user does, in a few words (the test id).
        argv: the command, after ``gancr``; ``{placeholders}`` are filled in.
        message: text the message must hold (naming the culprit), or several.
        code: the exit status (2: refused; 0: handled, e.g. a bad image skipped with a warning).
        files: bad files to make first, ``{name in the row's folder: maker}``.
        absent: paths that must not exist afterwards (outputs of a refused command).
        subprocess: run the installed ``gancr`` in a subprocess instead of in this process.
        seconds: the command must end within this many seconds (for inputs that once made it
            hang: the row fails when the time is up, instead of the suite never ending).
        needs: a component the row uses, ``kind:name``; the row is skipped where no plugin provides it.
    """

    id: str
    argv: tuple[str, ...]
    message: str | tuple[str, ...]
    code: int = 2
    files: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    subprocess: bool = False
    seconds: float | None = None
    needs: str = ""


def C(id: str, argv: str, message: str | tuple[str, ...], **kw) -> Case:  # noqa: N802 - a row, as a table reads
    return Case(id, tuple(argv.split()), message, **kw)


STYLIZE = "stylize {photo} --checkpoint {tmp}/%s --out {tmp}/out"
EXPORT = "export --checkpoint {tmp}/%s --format onnx --out {tmp}/g.onnx"
EVAL = "eval --checkpoint {tmp}/%s --content {photos} --style {styles} --views 1 --feature-size 32 --max-size 64"

CASES: list[Case] = []

# ----------------------------------------------------------------------------------------
# bad specs: validate and train refuse them alike, naming the field
# ----------------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("training.optimizer.lr.generator=.inf", "training.optimizer.lr.generator: must be a finite number"),
    ("training.optimizer.lr.discriminator=.nan", "training.optimizer.lr.discriminator: must be a finite number"),
    ("training.stages.1.w_g=.inf", "training.stages.1.w_g: must be a finite number"),
    ("training.stages.1.w_c=-.inf", "training.stages.1.w_c: must be a finite number"),
    ("losses.content.0.weight=.nan", "losses.content.0.weight: must be a finite number"),
    ("training.ema.decay=.inf", "training.ema.decay: must be a finite number"),
    ("training.grad_clip=.inf", "training.grad_clip: must be a finite number"),
    ("data.crop_scale=[.nan, 1]", "data.crop_scale.0: must be a finite number"),
    ("training.image_size=100000", "training.image_size"),
    ("training.image_size=8", "training.image_size"),
    ("training.batch_size=0", "training.batch_size"),
    ("training.batch_size=1000000", "training.batch_size"),
    ("data.load_size=1000000", "data.load_size"),
    ("training.seed=-1", "training.seed"),
    ("training.seed=1180591620717411303424", "training.seed"),
    ("training.device=tpu", "training.device: unknown device 'tpu'"),
    ("training.device=cuda:x", "training.device: unknown device"),
    ("training.workers=100000", "training.workers"),
    ("training.image_pool=1000000000", "training.image_pool"),
    ("training.stages=[]", "training.stages"),
    ("training.stages.0.steps=0", "training.stages.0.steps"),
    ("training.checkpoint.every=0", "training.checkpoint.every"),
    ("training.checkpoint.keep=0", "training.checkpoint.keep"),
    ("training.d_steps=0", "training.d_steps"),
    ("training.ema.decay=1.5", "training.ema.decay"),
    ("data.crop_scale=[0.9, 0.1]", "data.crop_scale"),
    ("model.generator.encoder.widths=[8, 0]", "model.generator.encoder.widths"),
    ("model.generator.encoder.widths=[100000]", "model.generator.encoder.widths"),
    ("model.generator.encoder={name: nope}", "unknown encoder 'nope'"),
    ("trainig.seed=1", "trainig: unknown field (did you mean 'training'?)"),
    ("model.discriminator.width=1000000000", "discriminator 'patchgan'"),
    ("model.generator.neck.in_channels=1000000", "neck 'resblocks'"),
    ("requires=[gancr-does-not-exist]", "gancr-does-not-exist is not installed"),
]
for setting, message in BAD_SETTINGS:
    CASES.append(C(f"validate --set {setting}", "validate {spec} --set " + setting.replace(" ", "\0"), message))
    CASES.append(C(f"train --set {setting}", "train {spec} --out {tmp}/run --quiet --set " + setting.replace(" ", "\0"),
                   message, absent=("{tmp}/run",)))

BAD_SPEC_FILES = [
    ("a spec that is a YAML list", "spec_list", "a spec must be a mapping at the top level, got list"),
    ("a spec that is a string", "spec_string", "a spec must be a mapping at the top level, got str"),
    ("a spec nested 5000 levels deep", "spec_deep", "nests"),
    ("a spec nested 300 mappings deep", "spec_deep_mapping", "nests more than 64 levels"),
    ("a duplicate YAML key", "spec_duplicate_key", "the key 'seed' is given twice (lines 2 and 3)"),
    ("a YAML tag that would run code", "spec_python_tag", "could not determine a constructor"),
    ("invalid YAML", "spec_bad_yaml", "not valid YAML"),
    ("a binary file as a spec", "spec_binary", "cannot read"),
    ("an infinite learning rate in YAML", "spec_inf_yaml", "training.optimizer.lr.generator: must be a finite number, got inf"),
    ("encoder weights that would run code", "spec_evil_weights", "refuses to unpickle it"),
    ("an ONNX model as encoder weights", "spec_onnx_weights", "vgg19 weights"),
    ("a generator file as encoder weights", "spec_generator_as_weights", "do not match torchvision's vgg19"),
    ("encoder weights that do not exist", "spec_missing_weights", "no such file"),
    ("timm weights of another network", "spec_timm_wrong_weights", ("do not belong to resnet18", "missing conv1.weight",
                                                                   "unexpected weight, bias")),
]
for what, maker, message in BAD_SPEC_FILES:
    CASES.append(C(f"validate {what}", "validate {tmp}/bad.yaml", message, files={"bad.yaml": maker}))
# a .json file: the list's length is the fault, and PyYAML's Python parser takes 10 s over 300000 entries
CASES.append(C("validate 300000 requirements", "validate {tmp}/bad.json", "requires: List should have at most 100 items",
               files={"bad.json": "spec_many_requires"}))
CASES += [
    C("train a spec nested 5000 levels deep", "train {tmp}/bad.yaml --out {tmp}/run", "nests", files={"bad.yaml": "spec_deep"},
      absent=("{tmp}/run",)),
    C("train with a duplicate YAML key", "train {tmp}/bad.yaml --out {tmp}/run", "given twice",
      files={"bad.yaml": "spec_duplicate_key"}, absent=("{tmp}/run",)),
    C("train with a YAML tag that would run code", "train {tmp}/bad.yaml --out {tmp}/run", "could not determine a constructor",
      files={"bad.yaml": "spec_python_tag"}, absent=("{tmp}/run",)),
    C("validate invalid JSON", "validate {tmp}/bad.json", "not valid JSON", files={"bad.json": "spec_bad_json"}),
    C("validate a duplicate JSON key", "validate {tmp}/bad.json", "the key 'seed' is given twice",
      files={"bad.json": "spec_json_duplicate"}),
    C("validate NaN in JSON", "validate {tmp}/bad.json", "training.optimizer.lr.generator: must be a finite number",
      files={"bad.json": "spec_json_nan"}),
    C("validate a spec that does not exist", "validate {tmp}/nowhere.yaml", "no such spec file"),
    C("validate a folder as the spec", "validate {tmp}", "cannot read"),
    C("--set without '='", "validate {spec} --set training.seed", "an override must look like path.to.field=value"),
    C("--set an index out of range", "validate {spec} --set training.stages.7.steps=1", "index 7 is out of range"),
    C("--set inside a number", "validate {spec} --set training.seed.x=1", "cannot set a field inside int"),
    C("train --max-steps -1", "train {spec} --out {tmp}/run --max-steps -1", "--max-steps: must be at least 1",
      absent=("{tmp}/run",)),
    C("train --max-steps 0", "train {spec} --out {tmp}/run --max-steps 0", "--max-steps: must be at least 1",
      absent=("{tmp}/run",)),
    C("train on a content folder that does not exist", "train {tmp}/s.yaml --out {tmp}/run --quiet",
      "image folder or file not found", files={"s.yaml": "spec_missing_content"}),
    C("train on an empty content folder", "train {tmp}/s.yaml --out {tmp}/run --quiet", "no images",
      files={"s.yaml": "spec_empty_content"}),
    C("train on a content folder of broken images", "train {tmp}/s.yaml --out {tmp}/run --quiet", "no usable images",
      files={"s.yaml": "spec_broken_content"}),
    C("train a step that cannot fit in memory",
      "train {spec} --out {tmp}/run --quiet --set training.image_size=4096 --set training.batch_size=4096 --set data.load_size=64",
      "lower training.batch_size or training.image_size", absent=("{tmp}/run/checkpoints",)),
    C("train with --resume and --overwrite", "train {spec} --out {tmp}/run --resume --overwrite", "give one of them"),
    C("train --resume of a folder with no run", "train {spec} --out {tmp}/run --resume --quiet", "no complete checkpoint"),
    C("train into a finished run without --resume", "train {spec} --out {run} --quiet", "holds another run"),
]

# ----------------------------------------------------------------------------------------
# hostile shapes: YAML alias bombs (a few lines, 10^9 values once expanded), aliases inside
# their own anchor, components nested deep; each ends within seconds, refused or built
# ----------------------------------------------------------------------------------------

QUICK = 15  # seconds: these inputs once made gancr hang, or take minutes
LAUGHS = ",".join(["&l0\0[lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]"]  # a --set value: nine levels, 10^9 values
                   + [f"&l{i}\0[{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)])
VALUES = "holds more than 1,000,000 values"
CASES += [
    C("validate an alias bomb at the top", "validate {tmp}/bad.yaml", (f"f: the spec {VALUES}", "the anchor &f (line 6"),
      files={"bad.yaml": "spec_alias_bomb"}, seconds=QUICK),
    C("validate an alias bomb in requires", "validate {tmp}/bad.yaml", (f"requires.5: the spec {VALUES}", "&l5 (line 7"),
      files={"bad.yaml": "spec_alias_bomb_requires"}, seconds=QUICK),
    C("train an alias bomb in requires", "train {tmp}/bad.yaml --out {tmp}/run", f"requires.5: the spec {VALUES}",
      files={"bad.yaml": "spec_alias_bomb_requires"}, absent=("{tmp}/run",), seconds=QUICK),
    C("validate an alias inside its own anchor", "validate {tmp}/bad.yaml", "description.1: the spec holds itself",
      files={"bad.yaml": "spec_alias_cycle"}, seconds=QUICK),
    C("validate --set an alias bomb", "validate {spec} --set requires=[" + LAUGHS + "]",
      (f"requires.5: the value of --set {VALUES}", "the anchor &l5 (line 1"), seconds=QUICK),
    C("train --set an alias bomb", "train {spec} --out {tmp}/run --set description=[" + LAUGHS + "]",
      f"description.5: the value of --set {VALUES}", absent=("{tmp}/run",), seconds=QUICK),
    C("validate --set an alias inside its own anchor", "validate {spec} --set training.stages=&s\0[*s]",
      "training.stages.0: the value of --set holds itself", seconds=QUICK),
    C("validate --set a value nested 100 levels deep", "validate {spec} --set description=" + "[" * 100 + "]" * 100,
      "description.0.0.0.0.0.0.0 ... 56 more ... 0: the value of --set nests more than 64 levels deep", seconds=QUICK),
    C("validate --set a value nested 5000 levels deep", "validate {spec} --set description=" + "[" * 5000 + "]" * 5000,
      "description: cannot parse the value: it nests too deeply", seconds=QUICK),
    C("validate diffaug nested 10 deep", "validate {tmp}/s.yaml", "", code=0, files={"s.yaml": "spec_diffaug_10"},
      seconds=QUICK, needs="discriminator:diffaug"),
    C("validate diffaug nested 40 deep", "validate {tmp}/s.yaml", "", code=0, files={"s.yaml": "spec_diffaug_40"},
      seconds=QUICK, needs="discriminator:diffaug"),
    C("train diffaug nested 40 deep", "train {tmp}/s.yaml --out {tmp}/run --quiet --max-steps 1", "", code=0,
      files={"s.yaml": "spec_diffaug_40"}, seconds=QUICK, needs="discriminator:diffaug"),
    C("validate diffaug nested 200 deep", "validate {tmp}/s.yaml",
      "model.discriminator.inner.inner.inner.inner.inner ... 56 more ... inner: the spec nests more than 64 levels deep",
      files={"s.yaml": "spec_diffaug_200"}, seconds=QUICK, needs="discriminator:diffaug"),
    C("train diffaug nested 200 deep", "train {tmp}/s.yaml --out {tmp}/run --quiet", "nests more than 64 levels deep",
      files={"s.yaml": "spec_diffaug_200"}, absent=("{tmp}/run",), seconds=QUICK, needs="discriminator:diffaug"),
]

# ----------------------------------------------------------------------------------------
# bad paths: every output is checked before any work
# ----------------------------------------------------------------------------------------

CASES += [
    C("stylize --out an existing file", "stylize {photo} --checkpoint {run} --out {photo}", "is a file, not a folder"),
    C("stylize --out under a file", "stylize {photo} --checkpoint {run} --out {photo}/sub", "is a file, not a folder"),
    C("stylize --out a place root cannot write", "stylize {photo} --checkpoint {run} --out {denied}/out", "not writable"),
    C("stylize into its own input folder", "stylize {photos} --checkpoint {run} --out {photos}", "would overwrite the input"),
    C("stylize a file that does not exist", "stylize {tmp}/nowhere.png --checkpoint {run} --out {tmp}/out",
      "no such file or folder", absent=("{tmp}/out",)),
    C("stylize a text file", "stylize {tmp}/notes.txt --checkpoint {run} --out {tmp}/out", "not an image file",
      files={"notes.txt": "text"}, absent=("{tmp}/out",)),
    C("stylize an empty folder", "stylize {tmp}/e --checkpoint {run} --out {tmp}/out", "no images",
      files={"e": "empty_folder"}, absent=("{tmp}/out",)),
    C("stylize a folder without images", "stylize {tmp}/e --checkpoint {run} --out {tmp}/out", "no images",
      files={"e": "folder_without_images"}, absent=("{tmp}/out",)),
    C("train --out an existing file", "train {spec} --out {photo}", "is a file, not a folder"),
    C("train --out a place root cannot write", "train {spec} --out {denied}/run", "not writable"),
    C("export --out a folder", "export --checkpoint {run} --format onnx --out {tmp}", "it is a folder"),
    C("export --out under a file", "export --checkpoint {run} --format onnx --out {photo}/g.onnx", "is a file, not a folder"),
    C("export --out a place root cannot write", "export --checkpoint {run} --format torchscript --out {denied}/g.pt",
      "not writable"),
    C("schema --out a folder", "schema --out {tmp}", "it is a folder"),
    C("schema --out under a file", "schema --out {photo}/schema.json", "is a file, not a folder"),
    C("schema --out a place root cannot write", "schema --out {denied}/schema.json", "not writable"),
    C("report --out a folder", "report {run} --out {tmp}", "it is a folder"),
    C("report --out a place root cannot write", "report {run} --out {denied}/r.html", "not writable"),
    C("eval --json a folder", (EVAL % "x.pt").replace("{tmp}/x.pt", "{run}") + " --json {tmp}", "it is a folder"),
    C("new-plugin --out a file", "new-plugin blur --out {photo}", "is a file, not a folder"),
    C("bench quality --json a folder", "bench quality --spec {spec} --json {tmp}", "it is a folder"),
    C("stylize --checkpoint a folder with no run", "stylize {photo} --checkpoint {tmp} --out {tmp}/out",
      "holds neither generator.safetensors nor a checkpoint", absent=("{tmp}/out",)),
    C("stylize --checkpoint that does not exist", "stylize {photo} --checkpoint {tmp}/nowhere --out {tmp}/out",
      "no run directory, generator file or checkpoint", absent=("{tmp}/out",)),
    C("stylize --checkpoint a photo", "stylize {photo} --checkpoint {photo} --out {tmp}/out", "cannot read checkpoint",
      absent=("{tmp}/out",)),
]

# ----------------------------------------------------------------------------------------
# bad options
# ----------------------------------------------------------------------------------------

CASES += [
    C("stylize --alpha 2", "stylize {photo} --checkpoint {run} --out {tmp}/out --alpha 2", "alpha", absent=("{tmp}/out",)),
    C("stylize --alpha nan", "stylize {photo} --checkpoint {run} --out {tmp}/out --alpha nan", "alpha", absent=("{tmp}/out",)),
    C("stylize --overlap without --tile", "stylize {photo} --checkpoint {run} --out {tmp}/out --overlap 8",
      "--overlap and --stats-tiles go with --tile SIZE", absent=("{tmp}/out",)),
    C("stylize --tile 8", "stylize {photo} --checkpoint {run} --out {tmp}/out --tile 8", "tiles must be at least",
      absent=("{tmp}/out/im0.png",)),
    C("stylize --device tpu", "stylize {photo} --checkpoint {run} --out {tmp}/out --device tpu", "device",
      absent=("{tmp}/out",)),
    C("export --opset 5", "export --checkpoint {run} --format onnx --out {tmp}/g.onnx --opset 5", "opset 5 is too old",
      absent=("{tmp}/g.onnx",)),
    C("export --opset with torchscript", "export --checkpoint {run} --format torchscript --out {tmp}/g.pt --opset 17",
      "--opset applies to --format onnx only", absent=("{tmp}/g.pt",)),
    C("export --format tflite", "export --checkpoint {run} --format tflite --out {tmp}/g", "invalid choice"),
    C("describe an unknown component", "describe encoder nope", "unknown encoder 'nope'"),
]

# ----------------------------------------------------------------------------------------
# hostile and broken files given as a run: stylize, export and eval refuse them alike
# ----------------------------------------------------------------------------------------

HOSTILE = [
    ("evil.pt", "code_pickle", "refuses to unpickle it"),
    ("evil.pt", "code_pickle_eval", "refuses to unpickle it"),
    ("evil.pt", "code_pickle_legacy", "refuses to unpickle it"),
    ("evil.pkl", "raw_pickle", "cannot read checkpoint"),
    ("empty.pt", "empty", "cannot read checkpoint"),
    ("random.pt", "random_bytes", "cannot read checkpoint"),
    ("garbage.pt", "zip_of_text", "cannot read checkpoint"),
    ("cut.pt", "ckpt_truncated", "cannot read checkpoint"),
    ("flipped.pt", "ckpt_flipped", "is corrupt"),
    ("list.pt", "ckpt_list", "is not a gancr checkpoint"),
    ("nomodels.pt", "ckpt_no_models", "is not a gancr checkpoint"),
    ("models.pt", "ckpt_models_not_a_dict", "its models are not a mapping"),
    ("nospec.pt", "ckpt_no_spec", "has no spec"),
    ("devzero.pt", "ckpt_spec_dev_zero", "its stored spec is a str, not a mapping"),
    ("speclist.pt", "ckpt_spec_list", "its stored spec is a list, not a mapping"),
    ("deep.pt", "ckpt_spec_deep", "nests more than 64 levels deep"),
    ("unknown.pt", "ckpt_spec_unknown_encoder", "unknown encoder 'nope'"),
    ("flipped.safetensors", "gen_flipped", "is corrupt"),
    ("devzero.safetensors", "gen_spec_dev_zero", "its stored spec is a str, not a mapping"),
    ("speclist.safetensors", "gen_spec_list", "its stored spec is a list, not a mapping"),
    ("notjson.safetensors", "gen_spec_not_json", "its stored spec is a str, not a mapping"),
    ("deep.safetensors", "gen_spec_deep", "nests more than 64 levels deep"),
    ("deepdict.safetensors", "gen_spec_deep_dict", "nests more than 64 levels deep"),
    ("other.safetensors", "gen_no_format", "is not a gancr generator file"),
    ("inf.safetensors", "gen_spec_infinite_lr", "must be a finite number"),
    ("unknown.safetensors", "gen_spec_unknown_encoder", "unknown encoder 'nope'"),
    ("huge.safetensors", "gen_spec_huge_neck", "of weights, more than"),
    ("missing.safetensors", "gen_missing_tensors", "do not match its spec"),
    ("shapes.safetensors", "gen_wrong_shapes", "have other shapes"),
    ("nan.safetensors", "gen_nan", "hold NaN or infinite values"),
    ("inf.safetensors", "gen_inf", "hold NaN or infinite values"),
    ("long.safetensors", "st_header_too_long", "not a readable safetensors file"),
    ("notjson.safetensors", "st_header_not_json", "not a readable safetensors file"),
    ("list.safetensors", "st_header_list", "not a readable safetensors file"),
    ("outside.safetensors", "st_offsets_outside", "not a readable safetensors file"),
    ("dtype.safetensors", "st_bad_dtype", "not a readable safetensors file"),
    ("terabyte.safetensors", "st_huge_sparse", "declares 1.1 TB of tensors, more than the"),
    ("toolong.safetensors", "st_header_huge_declared", "header of 1.1 TB"),
    ("meta.safetensors", "st_metadata_not_strings", "not a readable safetensors file"),
    ("model.onnx", "onnx_renamed", "is an ONNX model (what `gancr export --format onnx` writes), not a run"),
    ("model.safetensors", "onnx_renamed", "is an ONNX model"),
    ("model.pt", "torchscript_renamed", "is a TorchScript model (what `gancr export --format torchscript` writes)"),
    # alias bombs: held to the limits of any spec before the checksum walks them, valid checksum or not
    ("bomb.pt", "ckpt_spec_alias_bomb", f"its stored spec {VALUES}"),
    ("laughs.pt", "ckpt_spec_billion_laughs", f"its stored spec {VALUES}"),
    ("rng.pt", "ckpt_alias_bomb_outside_spec", f"its content {VALUES}"),
    ("values.safetensors", "gen_spec_many_values", f"its metadata {VALUES}"),
]
QUICK_MAKERS = {"ckpt_spec_alias_bomb", "ckpt_spec_billion_laughs", "ckpt_alias_bomb_outside_spec", "gen_spec_many_values"}
for name, maker, message in HOSTILE:
    CASES.append(C(f"stylize --checkpoint {name} ({maker})", STYLIZE % name, message, files={name: maker},
                   absent=("{tmp}/out",), seconds=QUICK if maker in QUICK_MAKERS else None))
for name, maker, message in HOSTILE[::3]:  # every third again through export and eval: the same reader
    CASES.append(C(f"export --checkpoint {name} ({maker})", EXPORT % name, message, files={name: maker},
                   absent=("{tmp}/g.onnx",)))
    CASES.append(C(f"eval --checkpoint {name} ({maker})", EVAL % name, message, files={name: maker}))
CASES += [
    C("eval a generator of NaN weights", EVAL % "nan.safetensors", "hold NaN or infinite values",
      files={"nan.safetensors": "gen_nan"}),
    C("stylize a generator whose output overflows to NaN", STYLIZE % "huge.safetensors", "outputs NaN or infinite values",
      files={"huge.safetensors": "gen_huge_weights"}, absent=("{tmp}/out/im0.png",)),
    C("eval a generator whose output overflows to NaN", EVAL % "huge.safetensors", "outputs NaN or infinite values",
      files={"huge.safetensors": "gen_huge_weights"}),
    C("export a generator whose output overflows to NaN", EXPORT % "huge.safetensors", "nothing was written",
      files={"huge.safetensors": "gen_huge_weights"}, absent=("{tmp}/g.onnx",)),
    C("stylize --checkpoint the exported ONNX", "stylize {photo} --checkpoint {onnx} --out {tmp}/out", "Pass the run directory",
      absent=("{tmp}/out",)),
    C("export --checkpoint the exported TorchScript", "export --checkpoint {ts} --format onnx --out {tmp}/g.onnx",
      "is a TorchScript model", absent=("{tmp}/g.onnx",)),
    C("eval --checkpoint the exported ONNX", "eval --checkpoint {onnx} --content {photos} --style {styles}", "is an ONNX model"),
]

# ----------------------------------------------------------------------------------------
# bad images and bad run folders: skipped or reported, never a traceback
# ----------------------------------------------------------------------------------------

CASES += [
    C("stylize a truncated PNG", "stylize {tmp}/cut.png --checkpoint {run} --out {tmp}/out", "none of the 1 input image(s)",
      files={"cut.png": "png_truncated"}),
    C("stylize a PNG that declares 10^10 pixels", "stylize {tmp}/bomb.png --checkpoint {run} --out {tmp}/out",
      "cannot read image", files={"bomb.png": "png_bomb"}, absent=("{tmp}/out/bomb.png",)),
    C("stylize a folder of broken images", "stylize {tmp}/b --checkpoint {run} --out {tmp}/out",
      "none of the 2 input image(s) could be read", files={"b": "folder_of_broken"}),
    C("stylize a folder with one broken image", "stylize {tmp}/b --checkpoint {run} --out {tmp}/out",
      ("skipping unreadable image", "broken.jpg", "stylised 4 image(s)", "skipped 1 unreadable image(s)"),
      code=0, files={"b": "folder_one_broken"}),
    C("report a run whose spec.yaml runs code", "report {tmp}/r --out {tmp}/r.html", "", code=0,
      files={"r": "run_spec_python_tag"}),
    C("report a run whose spec.yaml is a list", "report {tmp}/r --out {tmp}/r.html", "", code=0, files={"r": "run_spec_list"}),
    C("report a run whose spec.yaml has odd stages", "report {tmp}/r --out {tmp}/r.html", "", code=0,
      files={"r": "run_spec_bad_stages"}),
    C("report a run whose metrics hold odd values", "report {tmp}/r --out {tmp}/r.html", "", code=0,
      files={"r": "run_metrics_odd"}),
    C("report a run with no logged steps", "report {tmp}/r --out {tmp}/r.html", "has no logged steps yet",
      files={"r": "run_metrics_empty"}, absent=("{tmp}/r.html",)),
    C("report a run whose spec.yaml is an alias bomb", "report {tmp}/r --out {tmp}/r.html", "", code=0,
      files={"r": "run_spec_alias_bomb"}, seconds=QUICK),
    C("report a folder without metrics", "report {tmp}/r --out {tmp}/r.html", "has no metrics.jsonl",
      files={"r": "run_without_metrics"}, absent=("{tmp}/r.html",)),
    C("report a folder that does not exist", "report {tmp}/nowhere", "no run directory"),
]

# ----------------------------------------------------------------------------------------
# a few through the installed command, in a subprocess
# ----------------------------------------------------------------------------------------

CASES += [
    C("(subprocess) stylize a checkpoint that would run code", STYLIZE % "evil.pt", "refuses to unpickle it",
      files={"evil.pt": "code_pickle"}, absent=("{tmp}/out",), subprocess=True),
    C("(subprocess) validate a spec nested 5000 levels deep", "validate {tmp}/bad.yaml", "nests",
      files={"bad.yaml": "spec_deep"}, subprocess=True),
    C("(subprocess) validate an alias bomb at the top", "validate {tmp}/bad.yaml", f"f: the spec {VALUES}",
      files={"bad.yaml": "spec_alias_bomb"}, subprocess=True, seconds=QUICK),
    C("(subprocess) validate diffaug nested 40 deep", "validate {tmp}/s.yaml", "", code=0,
      files={"s.yaml": "spec_diffaug_40"}, subprocess=True, seconds=QUICK, needs="discriminator:diffaug"),
    C("(subprocess) train --max-steps -1", "train {spec} --out {tmp}/run --max-steps -1", "must be at least 1",
      absent=("{tmp}/run",), subprocess=True),
    C("(subprocess) stylize into its own input folder", "stylize {photos} --checkpoint {run} --out {photos}",
      "would overwrite the input", subprocess=True),
    C("(subprocess) export --checkpoint the exported ONNX", "export --checkpoint {onnx} --format onnx --out {tmp}/g.onnx",
      "is an ONNX model", absent=("{tmp}/g.onnx",), subprocess=True),
]


# ----------------------------------------------------------------------------------------
# running a row
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assets(image_dirs, tmp_path_factory) -> Path:
    """The shared good files: a finished tiny run (checkpoints at 2 and 4), a spec, photos, exports."""
    root = tmp_path_factory.mktemp("corpus-assets")
    shutil.copytree(image_dirs[0], root / "photos")
    shutil.copytree(image_dirs[1], root / "styles")
    spec = tiny_spec(root / "photos", root / "styles", training={"checkpoint": {"every": 2, "keep": 3}})
    (root / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert Trainer(spec, root / "run", quiet=True).fit().status == "finished"
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.ts.pt")):
        code, _, err = run_cli("export", "--checkpoint", str(root / "run"), "--format", fmt, "--out", str(root / name),
                               "--no-check")
        assert code == 0, err
    return root


def _places(assets: Path, tmp: Path) -> dict[str, str]:
    content, style = assets / "photos", assets / "styles"
    return {
        "run": str(assets / "run"), "gen": str(assets / "run" / "generator.safetensors"),
        "ckpt": str(RunDir(assets / "run").checkpoints()[-1][1]),
        "photos": str(content), "photo": str(content / "im0.png"), "styles": str(style),
        "spec": str(assets / "spec.yaml"), "onnx": str(assets / "model.onnx"), "ts": str(assets / "model.ts.pt"),
        "tmp": str(tmp), "denied": "/sys/gancr-test",
    }


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text.replace("\0", " ")


class _TooSlow(BaseException):
    """Raised in this process when a row's time is up (a BaseException: nothing in gancr catches it)."""


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, a ``SIGALRM`` after ``seconds`` raises :class:`_TooSlow` (no limit: None)."""
    if seconds is None:
        yield
        return

    def alarm(signum, frame):
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run(case: Case, argv: list[str], tmp: Path) -> tuple[int, str]:
    if case.subprocess:
        try:
            proc = subprocess.run([*gancr_command(), *argv], env=subprocess_env(), capture_output=True, text=True,
                                  timeout=case.seconds or 120, cwd=tmp)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gancr {' '.join(argv)[:200]} was still running after {case.seconds or 120} s")
        return proc.returncode, proc.stderr
    try:
        with _deadline(case.seconds):
            return _run_here(argv)
    except _TooSlow:
        pytest.fail(f"gancr {' '.join(argv)[:200]} was still running after {case.seconds} s")


def _run_here(argv: list[str]) -> tuple[int, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # shown on stderr, as a terminal shows them (pytest would otherwise record them)
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            f"{category.__name__}: {message}\n")
        code, _, err = run_cli(*argv)
    return code, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, assets: Path, tmp_path: Path) -> None:
    if case.needs and gancr.get_registry().lookup(*case.needs.split(":")) is None:
        pytest.skip(f"no plugin provides {case.needs} here")
    places = _places(assets, tmp_path)
    if "{denied}" in " ".join(case.argv) and os.access("/sys", os.W_OK) and _sys_writable():
        pytest.skip("/sys is writable here")
    for name, maker in case.files.items():
        MAKERS[maker](assets, tmp_path / name)
    before = snapshot(assets)
    code, err = _run(case, [_fill(a, places) for a in case.argv], tmp_path)

    assert code == case.code, f"exit {code}, expected {case.code}:\n{err}"
    for text in (case.message,) if isinstance(case.message, str) else case.message:
        assert _fill(text, places) in err, f"the message does not say {text!r}:\n{err}"
    assert "Traceback" not in err and '  File "' not in err, err
    if case.code == 2:  # one paragraph: the error, or a spec's errors by path
        error = err[err.find("gancr "):]
        assert len(error) < 2500 and error.count("\n") <= 24, error
    assert snapshot(assets) == before, "a good file was changed"
    assert not (tmp_path / MARKER).exists(), "a hostile file ran code"
    for path in case.absent:
        assert not Path(_fill(path, places)).exists(), f"{path} was written by a refused command"
    assert not temporary_files(tmp_path, assets), "a temporary file was left behind"


def _sys_writable() -> bool:
    try:
        with open("/sys/gancr-test-probe", "w"):
            pass
    except OSError:
        return False
    os.unlink("/sys/gancr-test-probe")
    return True


def test_the_corpus_is_large_and_mostly_refusals():
    """The table itself: well over 100 rows, most of them refusals, a few through a subprocess."""
    outcomes = Counter("refused" if c.code == 2 else "handled" for c in CASES)
    assert len(CASES) >= 150 and outcomes["refused"] >= 140, outcomes
    assert len({c.id for c in CASES}) == len(CASES), "two rows with one id"
    assert 3 <= sum(c.subprocess for c in CASES) <= 8
