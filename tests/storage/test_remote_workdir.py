"""Run directories on TensorFlow's in-memory filesystem (``ram://``), as on a bucket.

``ram://`` behaves like an object store where it matters (no atomic directory rename; a
directory exists through makedirs or its objects) and lives in this process only, so everything
here runs in-process: the experiment (what evosyn-classify runs), its resume after a crash
injected between a generation's files and its marker, and evosyn-export's ``export_run``.
"""

import json
import uuid
from pathlib import Path

import pytest
from helpers import without_timing

from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.bin.export import REPORT_FILENAME, export_run
from tf_evosyn.export.target import ExportError, resolve_target
from tf_evosyn.loop.lineage import Lineage
from tf_evosyn.runs.classification import run_classification
from tf_evosyn.storage import fs, io_utils

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"


def _ram_dir(name: str) -> str:
    return f"ram://evosyn-tests/{uuid.uuid4().hex}/{name}"


def _smoke_config(mnist_dir: Path):
    config = load_config_file(str(SMOKE))
    config.data.source = "idx"
    config.data.data_dir = str(mnist_dir)
    config.data.train_limit = 1000
    config.data.test_limit = 300
    config.log.tensorboard_fit_logs = True  # as the full configs: Keras writes to the bucket too
    config.log.fit_verbose = 0
    return config


# --------------------------------------------------------------------------- commit protocol


class _Crash(Exception):
    """Stands in for the process dying at a chosen write."""


def _crash_on_write(monkeypatch, suffix: str):
    """Make the write of the first file whose path ends with ``suffix`` kill the 'process'."""
    real = fs.write_bytes

    def write_bytes(path, data):
        if str(path).endswith(suffix):
            raise _Crash(f"killed before writing {path}")
        real(path, data)

    monkeypatch.setattr(fs, "write_bytes", write_bytes)


def test_remote_directory_is_committed_by_its_marker_written_last(monkeypatch):
    final = _ram_dir("ckpt")

    def build(text):
        def fill(tmp: Path):
            (tmp / "a.txt").write_text(text)
            (tmp / "sub").mkdir()
            (tmp / "sub" / "b.txt").write_text(text)

        return fill

    assert io_utils.atomic_replace_dir(final, build("one")) == final
    assert io_utils.is_committed_dir(final)
    assert json.loads(fs.read_text(fs.join(final, io_utils.COMMIT_MARKER))) == {
        "files": ["a.txt", "sub/b.txt"]
    }
    with monkeypatch.context() as patch:
        _crash_on_write(patch, io_utils.COMMIT_MARKER)
        with pytest.raises(_Crash):
            io_utils.atomic_replace_dir(final, build("two"))
    # Killed between the files and the marker: the new files are there, but not committed.
    assert fs.read_text(fs.join(final, "a.txt")) == "two"
    assert not io_utils.is_committed_dir(final)

    io_utils.atomic_replace_dir(final, lambda tmp: (tmp / "c.txt").write_text("three"))
    assert io_utils.is_committed_dir(final)
    assert fs.listdir(final) == ["COMMITTED", "c.txt"], "old content is replaced, not merged"


def test_remote_failed_build_leaves_the_old_directory(monkeypatch):
    final = _ram_dir("ckpt")
    io_utils.atomic_replace_dir(final, lambda tmp: (tmp / "a.txt").write_text("good"))

    def bad_build(tmp: Path):
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError, match="killed mid-build"):
        io_utils.atomic_replace_dir(final, bad_build)
    assert fs.read_text(fs.join(final, "a.txt")) == "good" and io_utils.is_committed_dir(final)


def test_rewriting_a_remote_file_replaces_it():
    path = fs.join(_ram_dir("files"), "lineage.jsonl")
    io_utils.atomic_write_text(path, "a much longer first version\n")
    io_utils.atomic_write_text(path, "second\n")
    assert fs.read_text(path) == "second\n"
    fs.copy_file(path, fs.join(fs.parent(path), "copy.txt"))
    fs.copy_file(path, fs.join(fs.parent(path), "copy.txt"))
    assert fs.read_text(fs.join(fs.parent(path), "copy.txt")) == "second\n"


def test_paths_keep_their_scheme():
    assert fs.join("gs://bucket/runs/x", "generations", "gen_0001") == (
        "gs://bucket/runs/x/generations/gen_0001"
    )
    assert fs.parent("gs://bucket/runs/x/lineage.jsonl") == "gs://bucket/runs/x"
    assert fs.path("file:///tmp/run") == Path("/tmp/run")
    assert Lineage("ram://nowhere/run").path == "ram://nowhere/run/lineage.jsonl"


# --------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, mnist_dir):
    workdir = tmp_path_factory.mktemp("local") / "run"
    return workdir, run_classification(_smoke_config(mnist_dir), workdir)


@pytest.fixture(scope="module")
def ram_run(mnist_dir):
    """A ram:// run killed between generation 2's files and its marker, then resumed."""
    workdir = _ram_dir("run")
    config = _smoke_config(mnist_dir)
    with pytest.MonkeyPatch.context() as patch:
        _crash_on_write(patch, "generations/gen_0002/COMMITTED")
        with pytest.raises(_Crash):
            run_classification(config, workdir)
    crashed = {
        "lineage": Lineage(workdir).last_generation,
        "gen2_files": fs.listdir(fs.join(workdir, "generations", "gen_0002")),
        "gen2_committed": io_utils.is_committed_dir(fs.join(workdir, "generations", "gen_0002")),
    }
    records = run_classification(config, workdir)
    return workdir, records, crashed


@pytest.mark.slow
def test_ram_run_resumes_after_a_crash_to_the_local_lineage(local_run, ram_run):
    workdir, records, crashed = ram_run
    # The crash left generation 2's files without marker, and the lineage at generation 1.
    assert crashed == {
        "lineage": 1,
        "gen2_files": ["model.keras", "record.json"],
        "gen2_committed": False,
    }
    assert [r["generation"] for r in records] == [0, 1, 2]
    assert without_timing(records) == without_timing(local_run[1])
    assert without_timing(Lineage(workdir).records) == without_timing(records)
    for generation in range(3):
        directory = fs.join(workdir, "generations", f"gen_{generation:04d}")
        assert io_utils.is_committed_dir(directory)
        assert fs.listdir(directory) == ["COMMITTED", "model.keras", "record.json"]
    runtime = io_utils.read_json(fs.join(workdir, "runtime.json"))
    assert runtime["resumed_after_generation"] == 1
    local_best = io_utils.read_json(local_run[0] / "best" / "record.json")
    ram_best = io_utils.read_json(fs.join(workdir, "best", "record.json"))
    assert without_timing([ram_best]) == without_timing([local_best])
    assert io_utils.read_json(fs.join(workdir, "status.json"))["state"] == "finished"
    assert fs.read_bytes(fs.join(workdir, "plots", "accuracy.png")).startswith(b"\x89PNG")
    assert [n for n in fs.listdir(fs.join(workdir, "tensorboard")) if "tfevents" in n]
    assert fs.listdir(fs.join(workdir, "tensorboard", "gen_0002")) == ["train"]
    # Local directories carry the same marker, so a local run copied to a bucket resumes there.
    assert (local_run[0] / "generations" / "gen_0002" / io_utils.COMMIT_MARKER).is_file()
    assert "cluster eff." in fs.read_text(fs.join(workdir, "summary.txt"))


@pytest.mark.slow
def test_export_from_a_ram_run_directory(ram_run, local_run):
    workdir = ram_run[0]
    output = _ram_dir("export")
    report = export_run(workdir, output, num_images=32, latency_runs=3)
    best = io_utils.read_json(fs.join(workdir, "best", "record.json"))
    assert report["generation"] == best["generation"] and report["workdir"] == workdir
    assert fs.listdir(output) == sorted(
        ["saved_model", "model.keras", "model.tflite", "model_int8.tflite", REPORT_FILENAME]
    )
    assert io_utils.read_json(fs.join(output, REPORT_FILENAME)) == json.loads(
        io_utils.dumps_json(report)
    )
    assert report["offspring"]["parameters"] < report["ancestor"]["parameters"]
    assert max(report["offspring"]["max_abs_difference"].values()) < 0.1


@pytest.mark.slow
def test_unmarked_best_is_not_exported_and_resume_rewrites_it(ram_run, mnist_dir):
    workdir, records, _ = ram_run
    best = fs.join(workdir, "best")
    expected = io_utils.read_json(fs.join(best, "record.json"))
    fs.remove(fs.join(best, io_utils.COMMIT_MARKER))  # killed while best/ was being replaced
    with pytest.raises(ExportError, match="unfinished"):
        resolve_target(workdir)
    assert resolve_target(workdir, generation=0)["offspring"]["generation"] == 0
    # Resuming the finished run trains nothing and rewrites best/.
    assert without_timing(run_classification(_smoke_config(mnist_dir), workdir)) == (
        without_timing(records)
    )
    assert io_utils.is_committed_dir(best)
    assert resolve_target(workdir)["offspring"]["generation"] == expected["generation"]
