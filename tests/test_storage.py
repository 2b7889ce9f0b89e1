"""gancr.storage: the typed checkpoint record and its layouts, the one reader, RunDir.

``tests/data/checkpoint_layout_1.pt`` was written by gancr at commit 8f56ff2, the last one
before the checkpoint record (layout 1: the trio's state dict under ``models``, with a
checksum): ``trainkit.tiny_spec`` on ``image_dirs``'s images with ``ema.decay 0.9``,
``image_pool 2`` and a checkpoint every step, stopped after step 3 (``max_steps=3``).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from gancr.errors import CheckpointError
from gancr.storage import (
    CHECKPOINT_VERSION,
    Checkpoint,
    InferenceWeights,
    RunDir,
    load_checkpoint,
    read_file,
    read_generator_file,
    read_run,
    read_state_dict,
    save_checkpoint,
    save_generator,
)
from gancr.storage.integrity import checksum
from gancr.storage.records import NETS
from gancr.training import Trainer
from gancr.training.history import EMA

from trainkit import assert_same_tensors, generator_tensors, image_dirs, tiny_spec  # noqa: F401 - a fixture

DATA = Path(__file__).parent / "data"
LAYOUT_1 = DATA / "checkpoint_layout_1.pt"
RUN_0_1 = DATA / "run_0_1"

#: The settings the layout-1 checkpoint was trained with (besides tiny_spec's).
LAYOUT_1_TRAINING = {"ema": {"decay": 0.9}, "image_pool": 2, "checkpoint": {"every": 1, "keep": 5}}


def _record(step: int = 7, **changes) -> Checkpoint:
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    record = Checkpoint(step=step, spec={"model": {}}, generator=dict(state), content_net={"v": torch.ones(2)},
                        discriminator={"d": torch.zeros(1)}, ema={"w": state["w"] + 1}, rng={"torch": torch.zeros(3)})
    return dataclasses.replace(record, **changes)


# ----------------------------------------------------------------------------------------
# the checkpoint record and its layouts
# ----------------------------------------------------------------------------------------


def test_a_checkpoint_is_written_in_the_records_layout_and_read_back(tmp_path):
    record = _record()
    path = save_checkpoint(tmp_path / "c.pt", record)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "gancr.checkpoint" and raw["version"] == CHECKPOINT_VERSION == 2
    assert set(raw["models"]) == set(NETS)  # one state dict per network, keys as the network has them
    assert raw["models"]["generator"].keys() == {"w"} and raw["checksum"] == checksum(
        {k: v for k, v in raw.items() if k != "checksum"})
    back = load_checkpoint(path)
    assert back.step == 7 and back.spec == {"model": {}} and torch.equal(back.ema["w"], record.ema["w"])
    assert all(getattr(back, n).keys() == getattr(record, n).keys() for n in NETS)
    assert back.inference_weights(path).generator.keys() == {"w"}


def test_no_ema_is_none_in_the_record_and_empty_in_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _record(ema=None))
    assert torch.load(path, weights_only=True)["ema"] == {}
    assert load_checkpoint(path).ema is None


def test_a_layout_1_checkpoint_of_gancr_0_1_loads_as_a_record():
    """run_0_1's checkpoint: layout 1 without a checksum (gancr 0.1)."""
    record = load_checkpoint(RUN_0_1 / "checkpoints" / "step_0000002.pt")
    assert record.step == 2 and record.spec["description"].startswith("a tiny run written by gancr 0.1")
    assert all(getattr(record, n) for n in NETS) and record.ema
    assert not any(k.startswith(tuple(f"{n}." for n in NETS)) for k in record.generator)  # the network's own keys


def test_a_layout_1_checkpoint_of_the_current_trainer_resumes_as_a_straight_run_would(tmp_path, image_dirs):
    """The file gancr wrote before the record (layout 1, with a checksum) continues bit for bit
    (its EMA, written with a constant decay, continues with the warm-up's)."""
    old = load_checkpoint(LAYOUT_1)
    assert old.step == 3 and old.ema and old.pool["images"].shape[0] == 2 and set(old.optimizers) == set(NETS)
    spec = tiny_spec(*image_dirs, training=LAYOUT_1_TRAINING)
    run = RunDir(tmp_path / "resumed")
    run.checkpoints_dir.mkdir(parents=True)
    shutil.copyfile(LAYOUT_1, run.checkpoint_file(3))
    with pytest.warns(UserWarning, match="changed settings: data.content, data.style"):  # its images were elsewhere
        resumed = Trainer(spec, run.path, resume=True, quiet=True)
    assert resumed.step == 3 and resumed.resumed_from == run.checkpoint_file(3)
    assert resumed.fit().status == "finished"
    straight = Trainer(spec, tmp_path / "straight", quiet=True)
    straight.fit()
    resumed_tensors, straight_tensors = generator_tensors(run.generator_file), generator_tensors(straight.run.generator_file)
    raw = {k: v for k, v in resumed_tensors.items() if k.startswith("generator/")}
    assert_same_tensors(raw, {k: v for k, v in straight_tensors.items() if k.startswith("generator/")})
    # its average was taken with gancr 0.1's constant decay; the last update (number 3) uses the warm-up's
    ema = EMA(resumed.generator, 0.9)
    ema.module.load_state_dict(old.ema)
    on_device = resumed.training_step.skips_on_device()  # the update's arithmetic follows the step's
    ema.update(resumed.generator, decay=ema.decay_at(3), skip=torch.tensor(False) if on_device else None)
    expected = {f"ema/{k}": v for k, v in ema.module.state_dict().items()}
    assert_same_tensors({k: v for k, v in resumed_tensors.items() if k.startswith("ema/")}, expected)
    # and what it writes now is layout 2
    assert torch.load(run.checkpoint_file(4), weights_only=True)["version"] == 2


def test_a_checkpoint_of_a_newer_layout_is_refused(tmp_path):
    data = _record().to_data()
    data["version"] = CHECKPOINT_VERSION + 1
    torch.save(data, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="layout version 3; this gancr reads versions 1 to 2"):
        load_checkpoint(tmp_path / "new.pt")


def test_layout_1_models_must_belong_to_the_trio(tmp_path):
    data = {"version": 1, "step": 1, "spec": {}, "models": {"generator.w": torch.zeros(1), "critic.w": torch.zeros(1)}}
    torch.save(data, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="'critic.w', not a key of generator, content_net, discriminator"):
        load_checkpoint(tmp_path / "odd.pt")


# ----------------------------------------------------------------------------------------
# the generator file
# ----------------------------------------------------------------------------------------


def test_the_generator_files_layout_comes_from_the_record(tmp_path):
    weights = InferenceWeights({"model": {}}, {"w": torch.ones(2)}, {"w": torch.zeros(2)}, {"c": torch.ones(1)}, step=5)
    path = save_generator(tmp_path / "g.safetensors", weights)
    stored = read_file(path, "generator file")
    assert set(stored.data) == {"generator/w", "ema/w", "content_net/c"}
    assert stored.metadata["format"] == "gancr.generator" and stored.metadata["step"] == "5"
    back = read_generator_file(path)
    assert back.step == 5 and back.path == path and not back.exported
    assert torch.equal(back.ema["w"], torch.zeros(2)) and back.content_net.keys() == {"c"}
    exported = dataclasses.replace(weights, ema=None, content_net={}, step=None, exported=True, uses_ema=True)
    back = read_generator_file(save_generator(tmp_path / "e.safetensors", exported))
    assert back.exported and back.uses_ema and back.ema is None and back.step is None


# ----------------------------------------------------------------------------------------
# the one reader
# ----------------------------------------------------------------------------------------


class _Code:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("read", [
    lambda p: load_checkpoint(p),
    lambda p: read_state_dict(p, "some weights"),
    lambda p: read_run(p),
])
def test_every_read_refuses_pickled_code_with_one_message(tmp_path, read, capsys):
    torch.save({"models": {}, "step": 1, "x": _Code()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        read(tmp_path / "evil.pt")
    assert f"{tmp_path / 'evil.pt'} holds Python objects besides tensors and plain data; gancr refuses to unpickle it" \
        in str(info.value)
    assert "this ran" not in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_every_read_checks_the_free_memory_first(tmp_path, monkeypatch, suffix):
    import gancr.storage.reader as reader

    path = tmp_path / f"w{suffix}"
    state = {"w": torch.zeros(1000)}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    monkeypatch.setattr(reader, "available_memory", lambda *a: 100)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read before the memory check"))
    with pytest.raises(CheckpointError, match=r"some weights .* declares 4\.\d kB of tensors, more than the 100 B"):
        read_state_dict(path, "some weights")


def test_a_state_dict_wrapped_under_state_dict_is_unwrapped(tmp_path):
    torch.save({"state_dict": {"a": torch.ones(1)}, "epoch": 3}, tmp_path / "w.pth")
    assert read_state_dict(tmp_path / "w.pth").keys() == {"a"}


# ----------------------------------------------------------------------------------------
# RunDir
# ----------------------------------------------------------------------------------------


def test_run_dir_knows_its_files(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.checkpoint_file(12) == tmp_path / "run" / "checkpoints" / "step_0000012.pt"
    assert run.sample_file(3).name == "step_0000003.png" and run.generator_file.name == "generator.safetensors"
    assert run.spec_file.name == "spec.yaml" and run.metrics_file.name == "metrics.jsonl"
    assert run.files() == [] and run.checkpoints() == [] and run.newest_checkpoint() is None
    with pytest.raises(CheckpointError, match="holds neither generator.safetensors nor a checkpoint"):
        run.weights()


def test_the_newest_checkpoint_is_the_newest_that_loads(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in (1, 2, 3):
        run.save_checkpoint(_record(step))
    run.checkpoint_file(3).write_bytes(run.checkpoint_file(3).read_bytes()[:500])  # cut by a kill
    assert [s for s, _ in run.checkpoints()] == [1, 2, 3]
    with pytest.warns(UserWarning, match="skipping checkpoint step_0000003.pt"):
        found = run.newest_checkpoint()
    assert found.path == run.checkpoint_file(2) and found.checkpoint.step == 2
    with pytest.warns(UserWarning, match="skipping checkpoint step_0000003.pt"):
        assert read_run(run.path).step == 2  # inference reads the same one
    assert run.prune_checkpoints(1) == [run.checkpoint_file(1), run.checkpoint_file(2)]


def test_run_dir_spec_says_what_is_wrong(tmp_path):
    from gancr.errors import GancrError

    run = RunDir(tmp_path)
    with pytest.raises(GancrError, match="has no spec.yaml"):
        run.spec()
    run.write_spec("- a\n- list\n")
    with pytest.raises(GancrError, match="holds a list, not a spec"):
        run.spec()
    run.write_spec("model: {}\n")
    assert run.spec() == {"model": {}}
