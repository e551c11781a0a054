"""Crash-safe file and directory writes, on a local disk or any TensorFlow filesystem.

An evolutionary run takes hours and may be killed at any moment (pre-emption, Ctrl-C, OOM).

* Local paths: every artefact is written to a temporary sibling, fsynced and renamed into
  place, so a reader always sees either the old or the new content, never a half-written file.
* Remote paths (``gs://``, ``s3://``, ``ram://``, see :mod:`tf_evosyn.storage.fs`): a file is one
object
  upload, which object stores publish whole when it completes, so files are written directly.
  Directories cannot be renamed atomically there, so :func:`atomic_replace_dir` builds the
  directory locally, uploads it and writes a :data:`COMMIT_MARKER` object last; a directory
  without its marker is unfinished (:func:`is_committed_dir`) and readers must ignore it.

A write that fails because the disk is full or not writable raises :class:`WriteError`, whose
one-line message names the file or directory being written (``model.save`` and ``os.write``
report ENOSPC without any path) and the fix; what was there before stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tf_evosyn.storage import fs

__all__ = [
    "COMMIT_MARKER",
    "RunDirectoryError",
    "TMP_PREFIX",
    "TRASH_PREFIX",
    "WriteError",
    "atomic_replace_dir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "dumps_json",
    "fsync_dir",
    "is_committed_dir",
    "naming_write_errors",
    "read_json",
    "remove_stale_temps",
    "to_jsonable",
]

TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
# Written last into every directory that atomic_replace_dir commits (locally too, so a run
# directory copied to a bucket stays valid); its JSON lists the directory's files.
COMMIT_MARKER = "COMMITTED"

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
# Failures of the storage itself, which the user must fix before the run can go on; any other
# OSError (a missing source file, ...) is a bug or another problem and passes through as it is.
_WRITE_ERRNOS = frozenset((*_FULL, *_DENIED, errno.EIO))
_RESUME_HINT = "then run the same command again: it resumes after the last committed generation"


class RunDirectoryError(Exception):
    """A run directory cannot be used as asked (busy, written by another format, not writable);
    the message is one line naming the directory or file and the fix."""


class WriteError(RunDirectoryError, OSError):
    """Writing ``path`` failed for lack of space or permission (``errno`` as the cause's)."""

    def __init__(self, path: str | os.PathLike[str], cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), os.fspath(path))
        self.path = fs.path(path)
        self.cause_filename = cause.filename

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno, str(self.errno))
        detail = f" ({self.cause_filename})" if self.cause_filename else ""
        if self.errno in _FULL:
            fix = f"free space on that disk (or move the run directory), {_RESUME_HINT}"
        elif self.errno in _DENIED:
            fix = f"make {fs.parent(self.path)} writable by this user, {_RESUME_HINT}"
        else:
            fix = f"check the disk, {_RESUME_HINT}"
        return f"cannot write {self.path}{detail}: {self.strerror} [{name}]; {fix}."


@contextlib.contextmanager
def naming_write_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a disk-full/permission :class:`OSError` raised inside into a :class:`WriteError`
    naming ``path``. A file of a directory being built names that directory: the file's own
    path is a temp that no longer exists."""
    try:
        yield
    except WriteError as error:
        if not any(part.startswith(TMP_PREFIX) for part in Path(os.fspath(error.path)).parts):
            raise
        raise WriteError(path, error) from error.__cause__
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS:
            raise
        raise WriteError(path, error) from error


@functools.cache
def _umask() -> int:
    # os.umask can only be read by setting it; do it once, not on every write.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _default_mode(is_dir: bool) -> int:
    """mkstemp/mkdtemp create 0600/0700 entries; give the final ones the usual umask mode."""
    return (0o777 if is_dir else 0o666) & ~_umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry so a finished rename survives power loss (no-op if unsupported)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> fs.RunPath:
    """Write ``data`` to ``path`` so that it is never partial: locally temp file + fsync +
    rename; on an object store one upload (published whole when it completes). A full or
    read-only disk raises :class:`WriteError` naming ``path``; the old file stays."""
    with naming_write_errors(path):
        return _atomic_write_bytes(path, data)


def _atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> fs.RunPath:
    if fs.is_remote(path):
        fs.write_bytes(path, data)
        return fs.path(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}-", dir=path.parent)
    try:
        os.chmod(tmp, _default_mode(is_dir=False))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> fs.RunPath:
    """Write UTF-8 ``text`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths, tuples and sets to plain JSON types (recursively)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    # Duck-typed so this module needs no numpy import: ``.tolist()`` turns ndarrays into nested
    # lists and numpy scalars into Python numbers (np.float32(1).tolist() -> 1.0).
    if type(obj).__module__ == "numpy" or type(obj).__module__.startswith("numpy."):
        return to_jsonable(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    converted = to_jsonable(obj)
    if converted is obj:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
    return converted


def dumps_json(obj: Any) -> str:
    """Serialise deterministically (sorted keys, indent=2, trailing newline) for diff-able files."""
    return json.dumps(to_jsonable(obj), sort_keys=True, indent=2, default=_json_default) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> fs.RunPath:
    """Write ``obj`` as JSON atomically; numpy scalars/arrays become Python numbers/lists."""
    return atomic_write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, naming the file in the error if it is corrupt."""
    text = fs.read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}. "
            "Restore the file or delete it to regenerate."
        ) from e


def _rmtree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def is_committed_dir(directory: str | os.PathLike[str]) -> bool:
    """Is ``directory`` a finished :func:`atomic_replace_dir`? Remote: its marker exists.
    Local: it exists (it appeared by rename; directories older than markers have none)."""
    if fs.is_remote(directory):
        return fs.isfile(fs.join(directory, COMMIT_MARKER))
    return fs.isdir(directory)


def atomic_replace_dir(
    final_dir: str | os.PathLike[str], build: Callable[[Path], None]
) -> fs.RunPath:
    """Build a directory with ``build(tmp_dir)`` and make it ``final_dir``, all or nothing.

    ``build`` always fills a fresh *local* directory. Locally it is a temp sibling: on success
    the old ``final_dir`` (if any) is renamed to a trash name, the new one renamed into place
    and the trash deleted, so a crash leaves either the complete old or the complete new
    directory (plus perhaps a stale temp/trash entry that :func:`remove_stale_temps` cleans).
    Remotely (see module doc) the old marker is deleted first, then the old files, the new
    files are uploaded and the marker written last: a crash leaves a directory without marker.
    Either way, if ``build`` raises, ``final_dir`` is untouched; a full or read-only disk raises
    :class:`WriteError` naming ``final_dir``.
    """
    with naming_write_errors(final_dir):
        if fs.is_remote(final_dir):
            return _replace_remote_dir(fs.path(final_dir), build)
        return _replace_local_dir(Path(final_dir), build)


def _replace_local_dir(final_dir: Path, build: Callable[[Path], None]) -> Path:
    parent = final_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final_dir.name}-", dir=parent))
    try:
        os.chmod(tmp_dir, _default_mode(is_dir=True))
        build(tmp_dir)
        atomic_write_text(tmp_dir / COMMIT_MARKER, _listing(tmp_dir))
        fsync_dir(tmp_dir)
    except BaseException:
        _rmtree(tmp_dir)
        raise

    trash: Path | None = None
    try:
        if final_dir.exists() or final_dir.is_symlink():
            trash = parent / f"{TRASH_PREFIX}{final_dir.name}-{secrets.token_hex(4)}"
            os.rename(final_dir, trash)
        os.rename(tmp_dir, final_dir)
    except BaseException:
        # Put the old directory back if the second rename failed.
        if trash is not None and trash.exists() and not final_dir.exists():
            os.rename(trash, final_dir)
            trash = None
        _rmtree(tmp_dir)
        raise
    fsync_dir(parent)
    if trash is not None:
        _rmtree(trash)
    return final_dir


def _listing(directory: Path) -> str:
    """The marker's content: the directory's files (relative paths), for people and checks."""
    files = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and not p.name.startswith(TMP_PREFIX) and p.name != COMMIT_MARKER
    )
    return dumps_json({"files": files})


def _replace_remote_dir(final_dir: str, build: Callable[[Path], None]) -> str:
    with tempfile.TemporaryDirectory(prefix="evosyn_stage_") as tmp:
        staged = Path(tmp)
        build(staged)
        listing = _listing(staged)
        fs.remove(fs.join(final_dir, COMMIT_MARKER))  # uncommit before touching the old files
        fs.rmtree(final_dir)
        fs.copy_tree(staged, final_dir, skip=(COMMIT_MARKER,))
        fs.write_bytes(fs.join(final_dir, COMMIT_MARKER), listing.encode("utf-8"))
    return final_dir


def _trash_target(entry: Path) -> Path | None:
    """``.trash-<name>-<hex>`` -> ``<parent>/<name>`` (the directory it used to be)."""
    m = re.fullmatch(re.escape(TRASH_PREFIX) + r"(.+)-[0-9a-f]{8}", entry.name)
    return entry.parent / m.group(1) if m else None


def remove_stale_temps(parent_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete ``.tmp-*``/``.trash-*`` leftovers of a killed process; returns what was removed.

    A trash dir whose original name no longer exists means the process died between the two
    renames of :func:`atomic_replace_dir`; that (complete, old) dir is renamed back instead of
    deleted. Only call this when no other process is writing into ``parent_dir``. Remote
    directories have no temps (they are staged locally): nothing to do.
    """
    if fs.is_remote(parent_dir):
        return []
    parent = Path(parent_dir)
    if not parent.is_dir():
        return []
    removed = []
    for entry in sorted(parent.iterdir()):
        if entry.name.startswith(TRASH_PREFIX):
            target = _trash_target(entry)
            if target is not None and not (target.exists() or target.is_symlink()):
                os.rename(entry, target)
                continue
        if entry.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
            _rmtree(entry)
            removed.append(entry)
    if removed:
        fsync_dir(parent)
    return removed
