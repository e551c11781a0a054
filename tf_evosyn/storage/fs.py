"""Paths and file operations for run directories on any filesystem TensorFlow knows.

Local paths go through ``os``/``shutil`` (and stay :class:`pathlib.Path`, so callers keep
``/``); URLs with a scheme (``gs://``, ``s3://`` with the tensorflow-io plugin, ``ram://``,
``hdfs://``) go through ``tf.io.gfile`` and stay ``str`` (``pathlib`` would collapse ``gs://b``
into ``gs:/b``). TensorFlow is imported only when a remote path is touched, so reading a local
lineage stays cheap.

Object stores differ from a local disk in two ways this module does not hide: a directory cannot
be renamed atomically (``ram://`` does not even move a directory's contents), and a directory
exists only through its objects or an explicit ``makedirs``. :mod:`tf_evosyn.storage.io_utils`
builds
its crash-safe writes on top of that (single-object writes + commit markers).
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

__all__ = [
    "RunPath",
    "absolute",
    "basename",
    "copy_file",
    "copy_tree",
    "exists",
    "is_remote",
    "isdir",
    "isfile",
    "join",
    "listdir",
    "makedirs",
    "parent",
    "path",
    "read_bytes",
    "read_text",
    "remove",
    "rmtree",
    "write_bytes",
]

RunPath = Path | str  # pathlib.Path for local paths, a URL string for remote ones
PathLike = str | os.PathLike[str]


def is_remote(p: PathLike) -> bool:
    """True for URLs with a scheme other than ``file://`` (handled by ``tf.io.gfile``)."""
    text = os.fspath(p)
    return "://" in text and not text.startswith("file://")


def path(p: PathLike) -> RunPath:
    """Normalise a user's path: ``Path`` for local ones (``file://`` stripped), ``str`` URLs."""
    text = os.fspath(p)
    if is_remote(text):
        return text.rstrip("/") if not text.endswith("://") else text
    if text.startswith("file://"):
        text = text[len("file://") :]
    return Path(text)


def join(base: PathLike, *parts: str) -> RunPath:
    """``base / part / ...`` for either kind of path."""
    base = path(base)
    if isinstance(base, Path):
        return base.joinpath(*parts)
    return posixpath.join(base, *parts)


def parent(p: PathLike) -> RunPath:
    p = path(p)
    if isinstance(p, Path):
        return p.parent
    scheme, rest = p.split("://", 1)
    return f"{scheme}://{posixpath.dirname(rest)}"


def basename(p: PathLike) -> str:
    p = path(p)
    return p.name if isinstance(p, Path) else posixpath.basename(p)


def absolute(p: PathLike) -> str:
    """An absolute, printable form (for reports): URLs as they are, local paths resolved."""
    p = path(p)
    return str(p.resolve()) if isinstance(p, Path) else p


def _gfile():
    from tf_evosyn._keras import tf

    return tf.io.gfile


def _clear_for_overwrite(p: str) -> None:
    """TensorFlow's ``ram://`` filesystem appends when a file is opened for writing again
    (measured with TF 2.21, for GFile "wb" and gfile.copy(overwrite=True)); delete first there.
    Real object stores replace an object in one upload, so they are left alone."""
    if p.startswith("ram://") and _gfile().exists(p):
        _gfile().remove(p)


def exists(p: PathLike) -> bool:
    p = path(p)
    return p.exists() if isinstance(p, Path) else _gfile().exists(p)


def isdir(p: PathLike) -> bool:
    p = path(p)
    return p.is_dir() if isinstance(p, Path) else _gfile().isdir(p)


def isfile(p: PathLike) -> bool:
    p = path(p)
    if isinstance(p, Path):
        return p.is_file()
    return _gfile().exists(p) and not _gfile().isdir(p)


def makedirs(p: PathLike) -> None:
    p = path(p)
    if isinstance(p, Path):
        p.mkdir(parents=True, exist_ok=True)
    else:
        _gfile().makedirs(p)


def listdir(p: PathLike) -> list[str]:
    """Sorted entry names of a directory ([] if it does not exist)."""
    p = path(p)
    if not isdir(p):
        return []
    names = os.listdir(p) if isinstance(p, Path) else _gfile().listdir(p)
    return sorted(name.rstrip("/") for name in names)


def read_bytes(p: PathLike) -> bytes:
    p = path(p)
    if isinstance(p, Path):
        return p.read_bytes()
    with _gfile().GFile(p, "rb") as f:
        return f.read()


def read_text(p: PathLike) -> str:
    return read_bytes(p).decode("utf-8")


def write_bytes(p: PathLike, data: bytes) -> None:
    """Write a file in one go (not atomic locally: use :mod:`tf_evosyn.storage.io_utils` for that).

    On object stores one write is one object upload, which becomes visible whole when it
    completes, so there it is the atomic primitive.
    """
    p = path(p)
    if isinstance(p, Path):
        p.write_bytes(data)
        return
    _gfile().makedirs(parent(p))
    _clear_for_overwrite(p)
    with _gfile().GFile(p, "wb") as f:
        f.write(data)


def remove(p: PathLike) -> None:
    """Delete a file if it exists."""
    p = path(p)
    if isinstance(p, Path):
        p.unlink(missing_ok=True)
    elif _gfile().exists(p):
        _gfile().remove(p)


def rmtree(p: PathLike) -> None:
    """Delete a directory and everything in it, if it exists."""
    p = path(p)
    if isinstance(p, Path):
        shutil.rmtree(p, ignore_errors=True)
    elif _gfile().isdir(p):
        _gfile().rmtree(p)


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Copy one file between any two filesystems (overwrites ``dst``)."""
    src, dst = path(src), path(dst)
    if isinstance(src, Path) and isinstance(dst, Path):
        shutil.copyfile(src, dst)
        return
    makedirs(parent(dst))
    if isinstance(dst, str):
        _clear_for_overwrite(dst)
    _gfile().copy(os.fspath(src), os.fspath(dst), overwrite=True)


def copy_tree(src: PathLike, dst: PathLike, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy every file under ``src`` to the same relative path under ``dst``.

    Files named in ``skip`` (top level only) are left out, e.g. a commit marker that the
    caller writes last. Returns the copied relative paths, sorted.
    """
    makedirs(dst)
    copied = []
    for name in listdir(src):
        if name in skip:
            continue
        source = join(src, name)
        if isdir(source):
            copied += [f"{name}/{sub}" for sub in copy_tree(source, join(dst, name))]
        else:
            copy_file(source, join(dst, name))
            copied.append(name)
    return sorted(copied)
