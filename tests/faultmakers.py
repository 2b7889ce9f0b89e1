"""The bad files of the fault corpus (tests/test_fault_corpus.py): each maker writes one at a path.

A maker is ``maker(assets, path)``: ``assets`` is the corpus's shared folder of good things (a
trained run, photos, a spec, exported models), read-only for the makers; ``path`` is where
the bad file (or folder) goes. Add a maker to :data:`MAKERS` and name it in a row.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from gancr.storage import RunDir
from gancr.storage.integrity import checksum
from gancr.storage.reader import read_file

from faultkit import flip_tensor_byte, safetensors_file

#: The file a pickle that runs code would create (it must never appear).
MARKER = "PWNED"

Maker = Callable[[Path, Path], Any]


class _RunsCode:
    """Unpickling this calls a function: creates the marker file next to the pickle."""

    def __init__(self, marker: Path, how: str = "system"):
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "eval":
            return (eval, (f"open({str(self.marker)!r}, 'w').close()",))
        return (os.system, (f"touch {self.marker}",))


def _nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def _laughs(levels: int, width: int = 10) -> list:
    """A "billion laughs" as data: each level a list of ``width`` references to the one below (pickled once each)."""
    value: list = ["lol"] * width
    for _ in range(levels):
        value = [value] * width
    return value


def _laughs_yaml(indent: str = "", keys: str | None = None, levels: int = 9) -> str:
    """A YAML "billion laughs": ``levels`` anchors, each a list of ten aliases of the one before
    (10^levels values once expanded); as top-level keys ``a``, ``b``, ... or as list items."""
    lines = []
    for i in range(levels):
        items = ", ".join(["lol"] * 10 if i == 0 else [f"*{_anchor(keys, i - 1)}"] * 10)
        head = f"{keys[i]}: " if keys else "- "
        lines.append(f"{indent}{head}&{_anchor(keys, i)} [{items}]")
    return "\n".join(lines) + "\n"


def _anchor(keys: str | None, i: int) -> str:
    return keys[i] if keys else f"l{i}"


def _nested_diffaug(levels: int) -> dict:
    """A discriminator: diffaug around diffaug ... ``levels`` deep, around a small PatchGAN."""
    d: dict = {"name": "patchgan", "layers": 2, "width": 8}
    for _ in range(levels):
        d = {"name": "diffaug", "policy": ["translation"], "inner": d}
    return d


def _newest_checkpoint(assets: Path) -> Path:
    return RunDir(assets / "run").checkpoints()[-1][1]


def _checkpoint_state(assets: Path) -> dict[str, Any]:
    state = torch.load(_newest_checkpoint(assets), weights_only=True)
    state.pop("checksum", None)
    return state


def _save_checkpoint_with(assets: Path, path: Path, **changes: Any) -> None:
    """The run's newest checkpoint with some entries changed, and a valid checksum (so only the change is wrong)."""
    state = {**_checkpoint_state(assets), **changes}
    state["checksum"] = checksum(state)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))  # pickling a deeply nested value
    try:
        torch.save(state, path)
    finally:
        sys.setrecursionlimit(limit)


def _save_generator_with(assets: Path, path: Path, *, tensors: Callable[[dict], dict] | None = None,
                         **metadata: str) -> None:
    """The run's generator file with its tensors or metadata changed (no checksum: files of gancr 0.1 have none)."""
    stored = read_file(assets / "run" / "generator.safetensors", "generator file")
    found, meta = stored.data, stored.metadata
    raw = {"format": "gancr.generator", "version": "1", "spec": meta["spec"]}
    raw.update(metadata)
    save_file(tensors(found) if tensors else found, str(path), metadata=raw)


def _spec_with(assets: Path, path: Path, change: Callable[[dict], Any]) -> None:
    spec = yaml.safe_load((assets / "spec.yaml").read_text(encoding="utf-8"))
    spec = change(spec) or spec
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def change(spec: dict) -> None:
        cur = spec
        parts = path.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {}) if isinstance(cur, dict) else cur[int(p)]
        cur[parts[-1]] = value
    return change


def _spec_of_gen(assets: Path, change: Callable[[dict], None]) -> str:
    spec = json.loads(read_file(assets / "run" / "generator.safetensors", "generator file").metadata["spec"])
    change(spec)
    return json.dumps(spec)


def _png_bomb(path: Path) -> None:
    """A valid PNG header that declares 100000 x 100000 pixels (a decompression bomb)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _run_with(assets: Path, path: Path, **files: str) -> None:
    """A copy of the trained run with some files replaced (``metrics_jsonl`` for metrics.jsonl)."""
    shutil.copytree(assets / "run", path)
    for name, text in files.items():
        (path / name.replace("_jsonl", ".jsonl").replace("_yaml", ".yaml")).write_text(text, encoding="utf-8")


def _huge_sparse_safetensors(path: Path) -> None:
    n = 2**40  # a 1 TB tensor, in a sparse file: the header is honest about the file's size
    header = {"__metadata__": {"format": "gancr.generator", "spec": "{}"},
              "generator/w": {"dtype": "F32", "shape": [n // 4], "data_offsets": [0, n]}}
    safetensors_file(path, header)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size + n)


MAKERS: dict[str, Maker] = {
    # -- pickles that would run code, and other things that are not checkpoints
    "code_pickle": lambda a, p: torch.save({"models": {}, "step": 1, "x": _RunsCode(p.parent / MARKER)}, p),
    "code_pickle_eval": lambda a, p: torch.save({"models": {}, "step": 1, "x": _RunsCode(p.parent / MARKER, "eval")}, p),
    "code_pickle_legacy": lambda a, p: torch.save({"models": {}, "step": 1, "x": _RunsCode(p.parent / MARKER)}, p,
                                                  _use_new_zipfile_serialization=False),
    "raw_pickle": lambda a, p: p.write_bytes(pickle.dumps(_RunsCode(p.parent / MARKER))),
    "empty": lambda a, p: p.write_bytes(b""),
    "text": lambda a, p: p.write_text("not a model\n", encoding="utf-8"),
    "random_bytes": lambda a, p: p.write_bytes(bytes(range(256)) * 64),
    "zip_of_text": lambda a, p: zipfile.ZipFile(p, "w").writestr("archive/data.pkl", "garbage") or None,
    # -- checkpoints that are damaged or lie
    "ckpt_truncated": lambda a, p: p.write_bytes(_newest_checkpoint(a).read_bytes()[:4000]),
    "ckpt_flipped": lambda a, p: (shutil.copyfile(_newest_checkpoint(a), p), flip_tensor_byte(p)),
    "ckpt_list": lambda a, p: torch.save([torch.zeros(3)], p),
    "ckpt_no_models": lambda a, p: torch.save({"step": 1, "spec": {}}, p),
    "ckpt_models_not_a_dict": lambda a, p: _save_checkpoint_with(a, p, models="generator"),
    "ckpt_no_spec": lambda a, p: torch.save({k: v for k, v in _checkpoint_state(a).items() if k != "spec"}, p),
    "ckpt_spec_dev_zero": lambda a, p: _save_checkpoint_with(a, p, spec="/dev/zero"),
    "ckpt_spec_list": lambda a, p: _save_checkpoint_with(a, p, spec=[1, 2, 3]),
    "ckpt_spec_deep": lambda a, p: _save_checkpoint_with(a, p, spec={"description": _nested(5000)}),
    # an alias bomb of 10^6 values (the checksum, recomputed after the edit, walks every one)
    "ckpt_spec_alias_bomb": lambda a, p: _save_checkpoint_with(
        a, p, spec={**_checkpoint_state(a)["spec"], "description": [["lol"] * 1000] * 1000}),
    # 10^9 values, and no checksum (as a file of gancr 0.1)
    "ckpt_spec_billion_laughs": lambda a, p: torch.save(
        {**_checkpoint_state(a), "spec": {**_checkpoint_state(a)["spec"], "requires": _laughs(8)}}, p),
    # outside the spec, with the checksum of the file before (its walk would never end)
    "ckpt_alias_bomb_outside_spec": lambda a, p: torch.save(
        {**torch.load(_newest_checkpoint(a), weights_only=True), "rng": {"x": _laughs(8)}}, p),
    "ckpt_spec_unknown_encoder": lambda a, p: _save_checkpoint_with(
        a, p, spec={**_checkpoint_state(a)["spec"], "model": {"generator": {"encoder": {"name": "nope"}}}}),
    # -- generator files that are damaged or lie
    "gen_flipped": lambda a, p: (shutil.copyfile(a / "run" / "generator.safetensors", p), flip_tensor_byte(p, 11)),
    "gen_spec_dev_zero": lambda a, p: _save_generator_with(a, p, spec=json.dumps("/dev/zero")),
    "gen_spec_list": lambda a, p: _save_generator_with(a, p, spec="[1, 2]"),
    "gen_spec_not_json": lambda a, p: _save_generator_with(a, p, spec="{model: "),
    "gen_spec_deep": lambda a, p: _save_generator_with(a, p, spec="[" * 5000 + "]" * 5000),
    "gen_spec_deep_dict": lambda a, p: _save_generator_with(a, p, spec='{"a":' * 3000 + "1" + "}" * 3000),
    "gen_spec_many_values": lambda a, p: _save_generator_with(a, p, spec=_spec_of_gen(
        a, lambda s: s.update(description=[0] * 1_100_000))),
    "gen_no_format": lambda a, p: _save_generator_with(a, p, format="something else"),
    "gen_spec_infinite_lr": lambda a, p: _save_generator_with(a, p, spec=_spec_of_gen(
        a, lambda s: s["training"]["optimizer"]["lr"].update(generator=float("inf")))),
    "gen_spec_unknown_encoder": lambda a, p: _save_generator_with(a, p, spec=_spec_of_gen(
        a, lambda s: s["model"]["generator"].update(encoder={"name": "nope"}))),
    "gen_spec_huge_neck": lambda a, p: _save_generator_with(a, p, spec=_spec_of_gen(
        a, lambda s: s["model"]["generator"].update(neck={"name": "resblocks", "blocks": 4, "in_channels": 10**6}))),
    "gen_missing_tensors": lambda a, p: _save_generator_with(
        a, p, tensors=lambda t: {k: v for i, (k, v) in enumerate(t.items()) if i % 2}),
    "gen_wrong_shapes": lambda a, p: _save_generator_with(
        a, p, tensors=lambda t: {k: (v[..., :1].contiguous() if v.dim() == 4 else v) for k, v in t.items()}),
    "gen_nan": lambda a, p: _save_generator_with(
        a, p, tensors=lambda t: {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in t.items()}),
    "gen_inf": lambda a, p: _save_generator_with(
        a, p, tensors=lambda t: {k: (v.clone().fill_(float("inf")) if v.is_floating_point() and v.dim() == 4 else v)
                                 for k, v in t.items()}),
    "gen_huge_weights": lambda a, p: _save_generator_with(  # finite, but the output overflows to NaN
        a, p, tensors=lambda t: {k: (v * 1e30 if v.is_floating_point() else v) for k, v in t.items()}),
    # -- safetensors headers that are malformed or huge
    "st_header_too_long": lambda a, p: p.write_bytes(struct.pack("<Q", 2**40) + b"{}"),
    "st_header_huge_declared": lambda a, p: (p.write_bytes(struct.pack("<Q", 2**40) + b"{}"), open(p, "r+b").truncate(2**40 + 8)),
    "st_header_not_json": lambda a, p: p.write_bytes(struct.pack("<Q", 7) + b"{nope!}"),
    "st_header_list": lambda a, p: p.write_bytes(struct.pack("<Q", 2) + b"[]"),
    "st_offsets_outside": lambda a, p: safetensors_file(p, {"__metadata__": {"format": "gancr.generator", "spec": "{}"},
                                                            "generator/w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1600]}},
                                                         b"\0" * 16),
    "st_bad_dtype": lambda a, p: safetensors_file(p, {"generator/w": {"dtype": "Q99", "shape": [4], "data_offsets": [0, 16]}},
                                                  b"\0" * 16),
    "st_huge_sparse": lambda a, p: _huge_sparse_safetensors(p),
    "st_metadata_not_strings": lambda a, p: safetensors_file(p, {"__metadata__": {"spec": {"a": 1}}}),
    # -- exported models in the wrong place
    "onnx_renamed": lambda a, p: shutil.copyfile(a / "model.onnx", p),
    "torchscript_renamed": lambda a, p: shutil.copyfile(a / "model.ts.pt", p),
    # -- images
    "png_truncated": lambda a, p: p.write_bytes((a / "photos" / "im0.png").read_bytes()[:200]),
    "png_bomb": lambda a, p: _png_bomb(p),
    "folder_of_broken": lambda a, p: (p.mkdir(), (p / "x.png").write_bytes(b"\x89PNG broken"),
                                      (p / "y.jpg").write_bytes(b"")),
    "folder_one_broken": lambda a, p: (shutil.copytree(a / "photos", p), (p / "broken.jpg").write_bytes(b"\xff\xd8 no")),
    "empty_folder": lambda a, p: p.mkdir(),
    "folder_without_images": lambda a, p: (p.mkdir(), (p / "notes.txt").write_text("x", encoding="utf-8")),
    # -- specs
    "spec_list": lambda a, p: p.write_text("- model\n- training\n", encoding="utf-8"),
    "spec_string": lambda a, p: p.write_text("just a string\n", encoding="utf-8"),
    "spec_deep": lambda a, p: p.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8"),
    "spec_deep_mapping": lambda a, p: p.write_text("".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "x: 1\n",
                                                   encoding="utf-8"),
    "spec_duplicate_key": lambda a, p: p.write_text("training:\n  seed: 1\n  seed: 2\n", encoding="utf-8"),
    "spec_python_tag": lambda a, p: p.write_text(f"description: !!python/object/apply:os.system ['touch {p.parent / MARKER}']\n",
                                                 encoding="utf-8"),
    "spec_bad_yaml": lambda a, p: p.write_text("model: [1, 2\ntraining: {\n", encoding="utf-8"),
    "spec_bad_json": lambda a, p: p.write_text('{"model": ', encoding="utf-8"),
    "spec_json_duplicate": lambda a, p: p.write_text('{"training": {"seed": 1, "seed": 2}}', encoding="utf-8"),
    "spec_json_nan": lambda a, p: p.write_text('{"training": {"optimizer": {"lr": {"generator": NaN}}}}', encoding="utf-8"),
    "spec_binary": lambda a, p: p.write_bytes(b"\xff\xfe\x00\x81" * 100),
    "spec_many_requires": lambda a, p: p.write_text(json.dumps({"requires": ["gancr-x"] * 300000}), encoding="utf-8"),
    "spec_alias_bomb": lambda a, p: p.write_text(_laughs_yaml(keys="abcdefghi"), encoding="utf-8"),
    "spec_alias_bomb_requires": lambda a, p: p.write_text("requires:\n" + _laughs_yaml("  "), encoding="utf-8"),
    "spec_alias_cycle": lambda a, p: p.write_text("training: {seed: 1}\ndescription: &x [1, *x]\n", encoding="utf-8"),
    "spec_diffaug_10": lambda a, p: _spec_with(a, p, _set("model.discriminator", _nested_diffaug(10))),
    "spec_diffaug_40": lambda a, p: _spec_with(a, p, _set("model.discriminator", _nested_diffaug(40))),
    "spec_diffaug_200": lambda a, p: _spec_with(a, p, _set("model.discriminator", _nested_diffaug(200))),
    "spec_inf_yaml": lambda a, p: _spec_with(a, p, _set("training.optimizer.lr", {"generator": float("inf")})),
    "spec_evil_weights": lambda a, p: (MAKERS["code_pickle"](a, p.parent / "evil.pt"),
                                       _spec_with(a, p, _set("model.generator.encoder",
                                                             {"name": "vgg19", "layer": "relu2_1", "weights": str(p.parent / "evil.pt")}))),
    "spec_onnx_weights": lambda a, p: _spec_with(a, p, _set("model.generator.encoder",
                                                            {"name": "vgg19", "layer": "relu2_1", "weights": str(a / "model.onnx")})),
    "spec_generator_as_weights": lambda a, p: _spec_with(a, p, _set("model.generator.encoder", {
        "name": "vgg19", "layer": "relu2_1", "weights": str(a / "run" / "generator.safetensors")})),
    "spec_timm_wrong_weights": lambda a, p: (
        torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), p.parent / "small.pth"),
        _spec_with(a, p, _set("model.generator.encoder", {
            "name": "timm", "model_name": "resnet18", "weights": str(p.parent / "small.pth")}))),
    "spec_missing_weights": lambda a, p: _spec_with(a, p, _set("model.generator.encoder", {
        "name": "vgg19", "layer": "relu2_1", "weights": str(p.parent / "nowhere.pth")})),
    "spec_missing_content": lambda a, p: _spec_with(a, p, _set("data.content", str(p.parent / "nowhere"))),
    "spec_empty_content": lambda a, p: (MAKERS["empty_folder"](a, p.parent / "empty"),
                                        _spec_with(a, p, _set("data.content", str(p.parent / "empty")))),
    "spec_broken_content": lambda a, p: (MAKERS["folder_of_broken"](a, p.parent / "broken"),
                                         _spec_with(a, p, _set("data.content", str(p.parent / "broken")))),
    # -- run folders for gancr report
    "run_spec_python_tag": lambda a, p: _run_with(a, p, spec_yaml=f"a: !!python/object/apply:os.system ['touch {p.parent / MARKER}']\n"),
    "run_spec_list": lambda a, p: _run_with(a, p, spec_yaml="- 1\n- 2\n"),
    "run_spec_bad_stages": lambda a, p: _run_with(a, p, spec_yaml="training: {stages: [1, {name: x, steps: y}]}\n"),
    "run_metrics_odd": lambda a, p: _run_with(a, p, metrics_jsonl="\n".join([
        '{"step": 1, "stage": "x", "loss/generator": "high"}', '{"step": "two"}', '[1, 2]', '{"step": 3, "stage": NaN}',
        '{"step": 4, "loss/style": 1e999, "images_per_s": true, "time": 10000000000000000000000000000}',
        '{"step": 5, "stage": 99999, "loss/generator": -1e308}', "{" * 3000, '{"step": 6, "loss/generator": 0.5}'])),
    "run_spec_alias_bomb": lambda a, p: _run_with(a, p, spec_yaml="training:\n  stages:\n" + _laughs_yaml("    ")),
    "run_metrics_empty": lambda a, p: _run_with(a, p, metrics_jsonl=""),
    "run_without_metrics": lambda a, p: (_run_with(a, p), (p / "metrics.jsonl").unlink()),
}
