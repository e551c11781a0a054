"""Which layout a run directory has: ``run_format.json`` records its format version.

The files of a run directory (:mod:`tf_evosyn.loop.run_dir`) are read back on resume, by the
export and by the reports; a later tf_evosyn may change them. A directory records the format it
was written in, and this code refuses one it cannot read before any training, naming both
versions, instead of failing later on a file it misreads (or, worse, mixing two formats in one
run). Directories written before the marker existed are format 1: they resume, and gain the
marker then.
"""

from __future__ import annotations

import os

from tf_evosyn._version import __version__
from tf_evosyn.storage import fs, io_utils

__all__ = [
    "FORMAT_FILENAME",
    "FORMAT_VERSION",
    "RunFormatError",
    "check",
    "ensure",
    "recorded_version",
]

FORMAT_FILENAME = "run_format.json"
# Bump when a file of the run directory changes so that this code's predecessors misread it.
FORMAT_VERSION = 1
_FIX = "use a new --workdir, or the tf_evosyn version that wrote it"


class RunFormatError(io_utils.RunDirectoryError, ValueError):
    """The run directory was written in a format this code cannot read."""


def _this_version() -> str:
    return __version__


def recorded_version(workdir: str | os.PathLike[str]) -> int | None:
    """The format version ``workdir`` records; None if it records none (new, or older than
    the marker). An unreadable marker raises :class:`RunFormatError`."""
    path = fs.join(workdir, FORMAT_FILENAME)
    if not fs.exists(path):
        return None
    try:
        version = io_utils.read_json(path).get("format_version")
    except (ValueError, AttributeError) as error:
        raise RunFormatError(f"{path} is not a run format marker ({error}); {_FIX}.") from error
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunFormatError(f"{path} records format_version {version!r}, not an integer; {_FIX}.")
    return version


def check(workdir: str | os.PathLike[str]) -> None:
    """Raise :class:`RunFormatError` unless this code reads ``workdir``'s format."""
    version = recorded_version(workdir)
    if version is None or version == FORMAT_VERSION:
        return
    written_by = io_utils.read_json(fs.join(workdir, FORMAT_FILENAME)).get("written_by", "?")
    age = "a newer" if version > FORMAT_VERSION else "an older"
    raise RunFormatError(
        f"{fs.absolute(workdir)} is a run directory of format {version} ({age} format, "
        f"written by {written_by}); this tf_evosyn {_this_version()} reads format "
        f"{FORMAT_VERSION} only: {_FIX}."
    )


def ensure(workdir: str | os.PathLike[str]) -> None:
    """:func:`check`, then record the current format if ``workdir`` has no marker yet (a new
    directory, or one written before markers: format 1). Call it holding the run's lock."""
    check(workdir)
    if recorded_version(workdir) is None:
        marker = {"format_version": FORMAT_VERSION, "written_by": f"tf_evosyn {_this_version()}"}
        io_utils.atomic_write_json(fs.join(workdir, FORMAT_FILENAME), marker)
