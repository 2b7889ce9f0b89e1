"""Helpers for the reliability tests: broken files, a full disk, a held run folder, file snapshots.

* :func:`flip_tensor_byte` changes one byte inside a tensor's data of a checkpoint (a zip)
  or a ``generator.safetensors`` (a bit that rotted on disk).
* :func:`full_disk` makes every write of :mod:`gancr.storage.files` fail with ``ENOSPC`` after
  ``after`` bytes, through the same code path a real full disk takes (``_write_chunk``).
* :func:`small_filesystem` mounts a real tmpfs of a few hundred kilobytes (root only; the test
  is skipped where mounting is not allowed).
* :func:`snapshot` / :func:`unchanged` record a folder's files and bytes, to assert that a
  refused command touched nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import gancr.storage.files


def flip_tensor_byte(path: Path, offset: int = 5) -> None:
    """Flip the bits of one byte ``offset`` bytes into the first tensor's data of ``path``."""
    data = bytearray(path.read_bytes())
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > offset)
        # the local header: 30 bytes, the name and the extra field, then the stored bytes
        name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len
    else:  # safetensors: 8 bytes of header length, the JSON header, then the tensors
        start = 8 + struct.unpack("<Q", data[:8])[0]
    data[start + offset] ^= 0xFF
    path.write_bytes(bytes(data))


def safetensors_file(path: Path, header: dict, payload: bytes = b"") -> Path:
    """Write a safetensors file with exactly this header (for hostile and odd files)."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + payload)
    return path


@contextlib.contextmanager
def full_disk(monkeypatch: pytest.MonkeyPatch, after: int = 0) -> Iterator[None]:
    """Within the block, writes through :mod:`gancr.storage.files` fail with ENOSPC once ``after`` bytes went in."""
    written = [0]
    real = gancr.storage.files._write_chunk

    def write(fh, data) -> None:
        n = memoryview(data).nbytes
        if written[0] + n > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written[0] += n
        real(fh, data)

    with monkeypatch.context() as m:
        m.setattr(gancr.storage.files, "_write_chunk", write)
        yield


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "300k", read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` (skips the test where mounting is not allowed)."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` (hidden ones too) with the SHA-256 of its bytes."""
    out = {}
    for root in roots:
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for p in sorted(root.rglob("*")) if root.is_dir() else []:
            if p.is_file() and p.name != gancr.storage.files.LOCK_NAME:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporary_files(*roots: Path) -> list[Path]:
    """Leftover ``.NAME.XXXX.tmp`` files of interrupted writes under ``roots``."""
    return [p for root in roots if root.is_dir() for p in root.rglob(".*.tmp")]


def hold_run_folder(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s run lock until it is killed."""
    code = ("import sys, time; from gancr.storage.files import RunLock; lock = RunLock(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc
