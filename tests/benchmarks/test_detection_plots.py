"""The KITTI benchmark's plotting helpers (benchmarks/detection_plots.py) on hand-made points."""

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import detection_plots  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POINTS = [
    {"generation": 0, "cluster_efficiency": 1.0, "macs": 2.0e9, "ap": 60.0},
    {"generation": 3, "cluster_efficiency": 4.2, "macs": 6.0e8, "ap": 55.0, "ap_low": 45.0,
     "ap_high": 63.0},
    {"generation": 7, "cluster_efficiency": 11.5, "macs": 2.1e8, "ap": 41.2, "ap_low": 30.5,
     "ap_high": 52.0},
]  # fmt: skip


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_ap_against_cluster_efficiency_writes_a_png_atomically(tmp_path):
    path = tmp_path / "plots" / "ap_vs_cluster.png"  # the folder is created
    written = detection_plots.plot_ap_against(POINTS, "cluster_efficiency", path, title="KITTI")
    assert written == path
    assert path.stat().st_size > 1000
    assert png_size(path) == (768, 528)  # 6.4 x 4.4 in at 120 dpi
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left

    without_mark = tmp_path / "no_mark.png"
    detection_plots.plot_ap_against(POINTS, "cluster_efficiency", without_mark, paper_mark=None)
    assert without_mark.read_bytes() != path.read_bytes()  # the dashed line and title drawn


def test_ap_against_macs_on_a_linear_axis_replaces_an_old_file(tmp_path):
    path = tmp_path / "ap_vs_macs.png"
    path.write_bytes(b"stale")
    detection_plots.plot_ap_against(POINTS, "macs", path, paper_mark=None, x_label="MACs")
    assert png_size(path) == (768, 528)


def test_bad_points_are_rejected(tmp_path):
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match="no points"):
        detection_plots.plot_ap_against([], "macs", path)
    with pytest.raises(ValueError, match=r"keys \['cluster_efficiency'\]"):
        detection_plots.plot_ap_against([{"generation": 0, "ap": 1.0}], "cluster_efficiency", path)
    inverted = [{**POINTS[2], "ap_low": 50.0, "ap_high": 40.0}]
    with pytest.raises(ValueError, match="must contain its AP"):
        detection_plots.plot_ap_against(inverted, "macs", path, paper_mark=None)
    with pytest.raises(ValueError, match="positive"):
        detection_plots.plot_ap_against([{**POINTS[0], "macs": 0.0}], "macs", path, log_x=True)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_learning_curve_table_shows_percent_per_epoch():
    rows = [
        {"epoch": 5, "loss": 1.2, "train": 0.412, "validation": 0.305},
        {"epoch": 10, "loss": 0.8, "train": 0.9, "validation": None},
    ]
    assert detection_plots.learning_curve_table(rows).splitlines() == [
        "epoch  train AP  val AP",
        "-----  --------  ------",
        "    5      41.2    30.5",
        "   10      90.0       -",
    ]
