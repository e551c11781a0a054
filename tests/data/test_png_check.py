"""A damaged KITTI image is refused in one line naming it, before any training."""

import shutil
import struct
import zlib
from pathlib import Path

import pytest

from tf_evosyn.data import DataError, png_check
from tf_evosyn.data.kitti_labels import scan_kitti_folder


@pytest.fixture
def fifteen_pairs(kitti_dir: Path, tmp_path: Path) -> Path:
    """15 real KITTI image/label pairs in a folder of their own."""
    root = tmp_path / "kitti"
    for kind, suffix in (("image_2", ".png"), ("label_2", ".txt")):
        (root / "training" / kind).mkdir(parents=True)
        for path in sorted((kitti_dir / "training" / kind).glob(f"*{suffix}"))[:15]:
            shutil.copy(path, root / "training" / kind / path.name)
    png_check.clear_cache()
    return root


def test_the_real_folder_passes_and_sizes_match_the_header(fifteen_pairs):
    records = scan_kitti_folder(fifteen_pairs)
    assert len(records) == 15
    first = records[0].image_path.read_bytes()
    width, height = struct.unpack(">II", first[16:24])
    assert (records[0].height, records[0].width) == (height, width)


def test_a_truncated_png_is_named_before_training(fifteen_pairs):
    image = fifteen_pairs / "training" / "image_2" / "000003.png"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    with pytest.raises(DataError) as error:
        scan_kitti_folder(fifteen_pairs)
    message = str(error.value)
    assert message.startswith(f"KITTI image {image} is damaged") and "\n" not in message
    assert "cut off" in message or "before its IEND" in message


def test_a_flipped_byte_fails_its_chunk_crc(fifteen_pairs):
    image = fifteen_pairs / "training" / "image_2" / "000005.png"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the image data
    image.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"000005.png is damaged: the CRC of its IDAT chunk"):
        scan_kitti_folder(fifteen_pairs)


def test_a_png_without_iend_is_incomplete(tmp_path):
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 2, 8, 2, 0, 0, 0))
    path = tmp_path / "000001.png"
    path.write_bytes(png_check.PNG_SIGNATURE + header)
    with pytest.raises(DataError, match="ends at byte 33 before its IEND chunk"):
        png_check.check_png(path)
    path.write_bytes(png_check.PNG_SIGNATURE + header + chunk(b"IEND", b""))
    assert png_check.check_png(path) == (2, 4)


def test_a_checked_file_is_not_read_again_until_it_changes(fifteen_pairs, monkeypatch):
    scan_kitti_folder(fifteen_pairs)
    reads = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or original(self))
    scan_kitti_folder(fifteen_pairs)
    assert reads == []
    image = fifteen_pairs / "training" / "image_2" / "000002.png"
    image.write_bytes(original(image) + b"")  # rewritten: a new mtime
    scan_kitti_folder(fifteen_pairs)
    assert reads == [image]
