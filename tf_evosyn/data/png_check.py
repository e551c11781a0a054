"""Is a PNG complete? Every chunk's length and CRC, and the IEND chunk, checked without decoding.

A truncated or damaged image otherwise passes a header check and fails minutes later inside
tf.data with a long traceback. Walking the chunks reads each file once (zlib's CRC runs at
memory speed), and the answer is cached per (path, size, mtime), so a folder scanned again in
the same process (a resumed run, the export) is not read twice.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from tf_evosyn.data.errors import DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHECKED: dict[tuple[str, int, int], tuple[int, int]] = {}


def _damaged(path: Path, what: str) -> DataError:
    return DataError(
        f"KITTI image {path} is damaged: {what}. The file is corrupt or truncated: copy it again "
        "(or re-extract data_object_image_2.zip), or remove it and its label file."
    )


def check_png(path: str | Path) -> tuple[int, int]:
    """(height, width) of a complete PNG; a one-line DataError naming the file otherwise."""
    path = Path(path)
    try:
        stat = os.stat(path)
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key in _CHECKED:
            return _CHECKED[key]
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"Cannot read KITTI image {path}: {e}.") from e
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise DataError(
            f"KITTI image {path} is not a PNG file (bad signature/header); the file is corrupt "
            "or truncated: re-extract data_object_image_2.zip."
        )
    width, height = struct.unpack(">II", data[16:24])
    offset = 8
    while True:
        if offset + 12 > len(data):
            raise _damaged(path, f"it ends at byte {len(data)} before its IEND chunk")
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        end = offset + 8 + length
        if end + 4 > len(data):
            raise _damaged(path, f"its {kind.decode(errors='replace')} chunk is cut off")
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(data[offset + 4 : end]) != crc:
            raise _damaged(path, f"the CRC of its {kind.decode(errors='replace')} chunk is wrong")
        if kind == b"IEND":
            break
        offset = end + 4
    _CHECKED[key] = (int(height), int(width))
    return _CHECKED[key]


def clear_cache() -> None:
    _CHECKED.clear()
