"""Writing files safely: every output atomically, checked before the work starts, one message per failure.

- :func:`atomic_write` (and ``_stream``, ``_bytes``, ``_text``): the content goes to a temporary
  file in the same folder (``.NAME.XXXX.tmp``), is flushed to disk, then renamed over ``NAME``.
  A write that fails (a full disk, a read-only place, an exception of the writer) removes
  its temporary file and leaves the old ``NAME`` as it was; a process killed mid-write
  leaves a ``.tmp`` file that no loader picks up (:func:`remove_orphans` deletes them).
- :func:`check_output`: whether a file or folder can be written there (not a folder where a
  file is wanted or the reverse, parents creatable, the place writable), asked before any
  work, so a command fails in a second with the path named instead of after an hour.
- :func:`write_error`: an ``OSError`` (no space, read-only, permission denied) as a
  :class:`~gancr.errors.WriteError` that names the file, the space it needed and what was kept.
- :class:`RunLock`: a run folder is used by one process at a time (``fcntl.lockf`` on
  ``RUN/.gancr.lock``, released by the OS when the process ends, however it ends).

Writes of this module go through :func:`_write_chunk`, the one place where bytes reach a
file, so that a test can make a full disk out of it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gancr.errors import GancrError, WriteError

__all__ = [
    "atomic_write",
    "atomic_write_stream",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_bytes",
    "check_output",
    "output_argument",
    "check_outputs",
    "write_error",
    "remove_orphans",
    "RunLock",
    "human_size",
    "LOCK_NAME",
]

#: The lock file inside a run folder.
LOCK_NAME = ".gancr.lock"
_TMP_SUFFIX = ".tmp"


def human_size(n: float) -> str:
    """``512 B``, ``3.4 MB``, ``1.2 GB`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _free_space(path: Path) -> int | None:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than this process may write",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "a folder on the way does not exist",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def write_error(exc: BaseException, path: str | os.PathLike[str], *, needed: int | None = None,
                kept: str | None = None) -> WriteError:
    """One paragraph about a failed write: the file, why, the space it needed, what was kept.

    Args:
        exc: the ``OSError`` (or the error of a library that wrote the file itself).
        path: the file that could not be written.
        needed: about how many bytes the file needed (said for a full disk).
        kept: what is intact, e.g. ``"the previous file is unchanged"`` (the default says so
            when the file existed).
    """
    path = Path(path)
    code = getattr(exc, "errno", None)
    reason = _REASONS.get(code) if code is not None else None
    text = str(exc)
    if reason is None and ("No space left" in text or "unexpected pos" in text):
        code, reason = errno.ENOSPC, _REASONS[errno.ENOSPC]
    if reason is None:
        reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
    parts = [f"cannot write {path}: {reason}"]
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        free = _free_space(path.parent)
        sizes = []
        if needed:
            sizes.append(f"it needs about {human_size(needed)}")
        if free is not None:
            sizes.append(f"{human_size(free)} free there")
        if sizes:
            parts[0] += f" ({', '.join(sizes)})"
        hint = "free some space or write to another place"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "write to another place"
    else:
        hint = ""
    if kept is None:
        kept = "the file that was there is unchanged" if path.exists() else "no partial file was left"
    message = f"{parts[0]}; {kept}" + (f". {hint[0].upper()}{hint[1:]}." if hint else ".")
    return WriteError(message, path=path)


# ----------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------


def _write_chunk(fh: IO[bytes], data: bytes | bytearray | memoryview) -> None:
    """The one place where this module's bytes reach a file (tests make it fail)."""
    fh.write(data)


class _Sink:
    """A write-only stream over a file that counts its bytes and writes through :func:`_write_chunk`.

    Libraries that write to a path from native code (``torch.save``, safetensors) report a
    full disk as an unrelated error, or abort the process; given this stream, the ``OSError``
    of the write itself reaches the caller.
    """

    def __init__(self, fh: IO[bytes]):
        self.fh = fh
        self.written = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        _write_chunk(self.fh, view)
        self.written += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self.fh.flush()

    def writable(self) -> bool:
        return True


def _mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _replace_into(path: Path, fill: Callable[[Path], int | None], needed: int | None) -> Path:
    """Make a temporary file next to ``path``, ``fill`` it, sync it and rename it to ``path``."""
    check_output(path, probe=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(exc, path, needed=needed) from None
    tmp_path = Path(tmp)
    try:
        written = fill(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file readable by its owner only; give it the usual permissions
        os.chmod(tmp_path, _mode())
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise write_error(exc, path, needed=needed or locals().get("written")) from None
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if "No space left" in str(exc) or "unexpected pos" in str(exc):  # a native writer's full disk
            raise write_error(exc, path, needed=needed) from None
        raise
    return path


def atomic_write_stream(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *,
                        needed: int | None = None) -> Path:
    """Call ``write(stream)`` with a binary stream into a temporary file, then rename it to ``path``.

    Use this for everything that can write to a stream (``torch.save``, ``img.save``, bytes):
    a full disk is then an ``OSError`` here, turned into a :class:`~gancr.errors.WriteError`.

    Args:
        path: the file to write (its parent folder is created when missing).
        write: writes the content.
        needed: about how many bytes the file will have (named when the disk is full).

    Raises:
        WriteError: the file could not be written; the old ``path`` (if any) is unchanged.
    """

    def fill(tmp: Path) -> int:
        with open(tmp, "wb") as fh:
            sink = _Sink(fh)
            write(sink)  # type: ignore[arg-type]
            fh.flush()
        return sink.written

    return _replace_into(Path(path), fill, needed)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None], *, needed: int | None = None) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path`` (same folder).

    For writers that need a file name. Prefer :func:`atomic_write_stream`, which reports a
    full disk precisely.

    Raises:
        WriteError: the file could not be written; the old ``path`` (if any) is unchanged.
    """
    return _replace_into(Path(path), lambda tmp: write(tmp), needed)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` (a temporary file of :func:`atomic_write`'s ``write``) through :func:`_write_chunk`."""
    with open(path, "wb") as fh:
        _write_chunk(fh, data)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write_stream(path, lambda fh: fh.write(data), needed=len(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------------------
# can it be written?
# ----------------------------------------------------------------------------------------


def check_output(path: str | os.PathLike[str], *, folder: bool = False, what: str | None = None,
                 probe: bool = True) -> Path:
    """Raise :class:`~gancr.errors.WriteError` unless a file (or ``folder``) can be written at ``path``.

    A folder is created later with its parents, and so is a file's parent folder; what must
    hold now: ``path`` is not a folder where a file is wanted (or a file where a folder is),
    no file stands where a folder would be created, and the place is writable (a
    temporary file is made and removed there, so read-only mounts are caught too).

    Args:
        path: the file or folder.
        folder: whether ``path`` is a folder.
        what: how the message names it, e.g. ``"--out"``.
        probe: make and remove a temporary file to see that the place is writable.
    """
    p = Path(path)
    name = f"{what} {p}" if what else str(p)
    if folder and p.exists() and not p.is_dir():
        raise WriteError(f"cannot write to {name}: it is a file, not a folder", path=p)
    if not folder and p.is_dir():
        raise WriteError(f"cannot write {name}: it is a folder; give a file name", path=p)
    target = p if folder else p.parent
    existing = target if str(target) else Path(".")
    while not existing.exists():
        if existing.is_symlink():
            raise WriteError(f"cannot write {name}: {existing} is a broken link", path=p)
        existing = existing.parent
    if not existing.is_dir():
        raise WriteError(f"cannot write {name}: {existing} is a file, not a folder", path=p)
    if not probe:
        return p
    try:
        fd, probe = tempfile.mkstemp(prefix=".gancr-write-check.", suffix=_TMP_SUFFIX, dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
        raise WriteError(f"cannot write {name}: {existing} is not writable ({reason})", path=p) from None
    return p


def output_argument(parser: Any, *flags: str, folder: bool = False, **kwargs: Any) -> Any:
    """``parser.add_argument(*flags, **kwargs)`` for an output path, noted so that :func:`check_outputs`
    checks it before the command runs (every command's outputs, the same way)."""
    action = parser.add_argument(*flags, **kwargs)
    outputs = list(parser.get_default("_outputs") or [])
    parser.set_defaults(_outputs=[*outputs, (action.dest, folder, flags[0])])
    return action


def check_outputs(args: Any) -> None:
    """:func:`check_output` for every output option of a parsed command line (:func:`output_argument`)."""
    for dest, folder, flag in getattr(args, "_outputs", None) or []:
        value = getattr(args, dest, None)
        if value:
            check_output(value, folder=folder, what=flag)


def remove_orphans(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete ``.NAME.XXXX.tmp`` files of writes that were killed; returns what was removed.

    Only call it on a folder that no other process writes to (a locked run folder).
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.endswith(_TMP_SUFFIX) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


# ----------------------------------------------------------------------------------------
# the run-folder lock
# ----------------------------------------------------------------------------------------


class RunLock:
    """One process at a time in a run folder: an exclusive lock (``fcntl.lockf``) on ``FOLDER/.gancr.lock``.

    The lock is held until :meth:`release` (or until the process ends: the OS releases it,
    even after ``kill -9``). The file keeps the holder's process id, for the message of the
    process that cannot get it. Within one process the lock is shared by its holders (a
    count), so the same process may open a folder twice.

    Raises:
        GancrError: another process holds the lock (its pid is named).
    """

    _held: dict[str, list[Any]] = {}  # realpath -> [fd, holders]

    def __init__(self, folder: str | os.PathLike[str]):
        import fcntl

        self.folder = Path(folder)
        self.key = os.path.realpath(self.folder)
        self.released = False
        held = RunLock._held.get(self.key)
        if held is not None:
            held[1] += 1
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(exc, path) from None
        try:  # a POSIX record lock: unlike flock, forked data-loader workers do not inherit it
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise write_error(exc, path) from None
            raise GancrError(
                f"{self.folder} is in use by another gancr process (pid {holder}); wait for it to finish "
                "or stop it, or write to another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        RunLock._held[self.key] = [fd, 1]

    def release(self) -> None:
        """Give the lock up (once; the last holder in this process closes it)."""
        if self.released:
            return
        self.released = True
        held = RunLock._held.get(self.key)
        if held is None:
            return
        held[1] -= 1
        if held[1] <= 0:
            del RunLock._held[self.key]
            os.close(held[0])  # closing the descriptor releases the lock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
