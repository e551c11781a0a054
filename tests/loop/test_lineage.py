"""Bookkeeping tests for the crash-safe I/O helpers and the lineage record of a run."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tf_evosyn.loop import lineage_report
from tf_evosyn.loop.lineage import Lineage, efficiencies  # noqa: E402
from tf_evosyn.loop.lineage_report import plot_lineage, summary_table  # noqa: E402
from tf_evosyn.storage import io_utils  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_record(gen, accuracy, synapses, clusters, accepted=True, anc=(1000, 40), **extra):
    syn_eff, clu_eff = efficiencies(anc[0], anc[1], synapses, clusters)
    rec = {
        "generation": gen,
        "metric": "accuracy",
        "score": accuracy,
        "accuracy": accuracy,
        "synapses": synapses,
        "clusters": clusters,
        "synaptic_efficiency": syn_eff,
        "cluster_efficiency": clu_eff,
        "accepted": accepted,
        "seconds": 1.5 * (gen + 1),
        "seed": 7 + gen,
        "layers": [
            {
                "name": "conv1",
                "synapses": synapses // 2,
                "clusters": clusters // 2,
                "total_synapses": anc[0] // 2,
                "total_clusters": anc[1] // 2,
            },
            {
                "name": "dense",
                "synapses": synapses - synapses // 2,
                "clusters": clusters - clusters // 2,
                "total_synapses": anc[0] - anc[0] // 2,
                "total_clusters": anc[1] - anc[1] // 2,
            },
        ],
    }
    rec.update(extra)
    return rec


@pytest.fixture
def records():
    return [
        make_record(0, 0.99, 1000, 40),
        make_record(1, 0.985, 500, 30, attempts=2, parent=0),
        make_record(2, 0.995, 250, 20),  # most accurate offspring
        make_record(3, 0.90, 50, 5, accepted=False, rejected="accuracy drop"),  # rejected
        make_record(4, 0.98, 200, 10),  # most efficient accepted
    ]


# --------------------------------------------------------------------------- io_utils


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


def test_atomic_replace_dir_creates_and_replaces(tmp_path):
    final = tmp_path / "ckpt"

    def build_v1(d: Path):
        (d / "a.txt").write_text("one")
        (d / "old_only.txt").write_text("x")

    def build_v2(d: Path):
        (d / "a.txt").write_text("two")

    assert io_utils.atomic_replace_dir(final, build_v1) == final
    assert (final / "a.txt").read_text() == "one"
    io_utils.atomic_replace_dir(final, build_v2)
    assert (final / "a.txt").read_text() == "two"
    assert not (final / "old_only.txt").exists(), "old content must be replaced, not merged"
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_atomic_replace_dir_failed_build_keeps_old(tmp_path):
    final = tmp_path / "ckpt"
    io_utils.atomic_replace_dir(final, lambda d: (d / "a.txt").write_text("good"))

    def bad_build(d: Path):
        (d / "a.txt").write_text("half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError, match="killed mid-build"):
        io_utils.atomic_replace_dir(final, bad_build)
    assert (final / "a.txt").read_text() == "good"
    assert leftovers(tmp_path) == []


def test_remove_stale_temps(tmp_path):
    (tmp_path / ".tmp-ckpt-abc").mkdir()
    (tmp_path / ".tmp-lineage.jsonl-xyz").write_text("partial")
    (tmp_path / "keep").mkdir()
    # Old dir renamed to trash while its replacement still exists: the trash is garbage.
    (tmp_path / "other").mkdir()
    (tmp_path / ".trash-other-0123abcd").mkdir()
    # Killed between the two renames: the (complete) old dir is restored, not deleted.
    (tmp_path / ".trash-ckpt-deadbeef").mkdir()
    (tmp_path / ".trash-ckpt-deadbeef" / "a.txt").write_text("old")

    removed = io_utils.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == [
        ".tmp-ckpt-abc",
        ".tmp-lineage.jsonl-xyz",
        ".trash-other-0123abcd",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "keep", "other"]
    assert (tmp_path / "ckpt" / "a.txt").read_text() == "old"


def test_atomic_write_json_round_trip_numpy(tmp_path):
    path = tmp_path / "sub" / "m.json"
    obj = {
        "b": np.float32(0.5),
        "a": np.int64(3),
        "arr": np.arange(3, dtype=np.int32),
        "m": np.ones((2, 2), dtype=np.float64),
        "flag": np.bool_(True),
        "nested": [{"x": np.float64(1.25)}, (1, 2)],
    }
    io_utils.atomic_write_json(path, obj)
    text = path.read_text()
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"arr"') < text.index('"b"'), "keys must be sorted"
    back = io_utils.read_json(path)
    assert back == {
        "a": 3,
        "arr": [0, 1, 2],
        "b": 0.5,
        "flag": True,
        "m": [[1.0, 1.0], [1.0, 1.0]],
        "nested": [{"x": 1.25}, [1, 2]],
    }
    assert type(back["a"]) is int and type(back["flag"]) is bool
    assert leftovers(path.parent) == []


def test_atomic_write_text_overwrites_and_read_json_names_file(tmp_path):
    path = tmp_path / "t.json"
    io_utils.atomic_write_text(path, "{broken")
    with pytest.raises(ValueError, match="t.json"):
        io_utils.read_json(path)
    io_utils.atomic_write_text(path, '{"ok": 1}')
    assert io_utils.read_json(path) == {"ok": 1}


# --------------------------------------------------------------------------- Lineage


def test_efficiencies():
    assert efficiencies(1000, 40, 8, 4) == (125.0, 10.0)
    assert efficiencies(10, 10, 0, 5)[0] == float("inf")
    with pytest.raises(ValueError):
        efficiencies(0, 10, 1, 1)


def test_lineage_append_reload_round_trip(tmp_path, records):
    lin = Lineage(tmp_path)  # run dir -> run_dir/lineage.jsonl
    assert lin.path == tmp_path / "lineage.jsonl"
    assert lin.last_generation == -1 and lin.ancestor is None and lin.best() is None
    for r in records:
        lin.append(r)
    assert lin.last_generation == 4

    reloaded = Lineage(tmp_path / "lineage.jsonl")
    assert reloaded.records == records
    assert reloaded.records[1]["attempts"] == 2 and reloaded.records[3]["rejected"]
    assert reloaded.ancestor["generation"] == 0
    assert [r["generation"] for r in reloaded.accepted_records()] == [0, 1, 2, 4]
    lines = (tmp_path / "lineage.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line) for line in lines)
    assert leftovers(tmp_path) == []

    # resume: continue appending to the reloaded lineage
    reloaded.append(make_record(5, 0.97, 100, 8))
    assert Lineage(tmp_path).last_generation == 5


def test_lineage_append_normalises_numpy(tmp_path):
    lin = Lineage(tmp_path)
    rec = make_record(0, 0.9, 1000, 40)
    rec["accuracy"] = np.float32(0.75)
    rec["synapses"] = np.int64(1000)
    stored = lin.append(rec)
    assert stored["accuracy"] == 0.75 and type(stored["synapses"]) is int
    assert Lineage(tmp_path).records[0]["synapses"] == 1000


def test_lineage_generation_gap_rejected(tmp_path, records):
    lin = Lineage(tmp_path)
    with pytest.raises(ValueError, match="generation must be 0"):
        lin.append(records[1])
    lin.append(records[0])
    with pytest.raises(ValueError, match="next generation must be 1"):
        lin.append(records[2])
    with pytest.raises(ValueError, match="next generation must be 1"):
        lin.append(records[0])  # duplicate
    assert len(Lineage(tmp_path).records) == 1, "a rejected append must not touch the file"


def test_lineage_missing_key_named(tmp_path, records):
    lin = Lineage(tmp_path)
    bad = dict(records[0])
    del bad["cluster_efficiency"]
    del bad["seed"]
    with pytest.raises(ValueError, match="cluster_efficiency") as exc:
        lin.append(bad)
    assert "seed" in str(exc.value)
    assert not lin.path.exists()

    bad_layer = dict(records[0], layers=[{"name": "conv1", "synapses": 1}])
    with pytest.raises(ValueError, match="total_clusters"):
        lin.append(bad_layer)
    with pytest.raises(ValueError, match="accuracy"):
        lin.append(dict(records[0], accuracy=99.0))  # a percentage, not a fraction


def test_lineage_corrupt_line_reports_line_number(tmp_path, records):
    lin = Lineage(tmp_path)
    for r in records[:3]:
        lin.append(r)
    lines = lin.path.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # truncated JSON in the middle
    lin.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as exc:
        Lineage(tmp_path)
    msg = str(exc.value)
    assert "line 2" in msg and "lineage.jsonl" in msg and "delete the run directory" in msg


def test_lineage_on_disk_gap_and_missing_key(tmp_path, records):
    path = tmp_path / "lineage.jsonl"
    path.write_text(json.dumps(records[0]) + "\n" + json.dumps(records[2]) + "\n")
    with pytest.raises(ValueError, match=r"line 2.*generation 2 where 1 was expected"):
        Lineage(path)
    bad = dict(records[0])
    del bad["layers"]
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"line 1.*layers"):
        Lineage(path)
    path.write_text(json.dumps(records[1]) + "\n")  # does not start at generation 0
    with pytest.raises(ValueError, match=r"line 1.*0 was expected"):
        Lineage(path)


def test_best(tmp_path, records):
    lin = Lineage(tmp_path)
    for r in records:
        lin.append(r)
    # gen 3 has the highest efficiencies but was rejected
    assert lin.best()["generation"] == 4
    assert lin.best("most_efficient")["generation"] == 4
    assert lin.best("most_accurate")["generation"] == 2
    with pytest.raises(ValueError, match="unknown criterion"):
        lin.best("smallest")


def test_best_ties_and_no_offspring(tmp_path):
    lin = Lineage(tmp_path)
    lin.append(make_record(0, 0.99, 1000, 40))
    lin.append(make_record(1, 0.5, 10, 2, accepted=False))
    assert lin.best("most_efficient") is None
    assert lin.best("most_accurate")["generation"] == 0
    lin.append(make_record(2, 0.99, 500, 20))
    lin.append(make_record(3, 0.99, 500, 20))
    assert lin.best("most_efficient")["generation"] == 3
    assert lin.best("most_accurate")["generation"] == 3
    lin.append(make_record(4, 0.98, 400, 20))  # same cluster eff, better synaptic eff
    assert lin.best("most_efficient")["generation"] == 4


def test_summary_table(records):
    table = summary_table(records, paper={"synaptic_efficiency": 125.0, "cluster_efficiency": 9.71})
    lines = table.rstrip("\n").splitlines()
    assert len(lines) == 2 + len(records) + 1
    for r in records:
        row = lines[2 + r["generation"]]
        assert row.split()[0] == str(r["generation"])
    assert "99.00" in lines[2] and "1,000" in lines[2] and "1.00x" in lines[2]
    assert lines[2 + 4].split()[4:6] == ["5.00x", "4.00x"]
    assert lines[2 + 3].split()[6] == "no" and lines[2 + 4].split()[6] == "yes"
    assert lines[-1].startswith("paper") and "125.00x" in lines[-1] and "9.71x" in lines[-1]
    assert len({len(line) for line in lines}) == 1, "fixed width: every row equally long"
    assert "paper" not in summary_table(records)


def test_plot_lineage_writes_pngs(tmp_path, records):
    out = tmp_path / "plots"
    paths = lineage_report.plot_lineage(records, out)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        ["accuracy.png", "synaptic_efficiency.png", "cluster_efficiency.png", "lineage.png"]
    )
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), p
    assert leftovers(out) == []
    with pytest.raises(ValueError):
        lineage_report.plot_lineage([], out)


def read_scalars(logdir: Path) -> dict[tuple[str, int], float]:
    from tf_evosyn._keras import tf

    out = {}
    files = list(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    for f in files:
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for v in event.summary.value:
                assert v.metadata.plugin_data.plugin_name == "scalars" or not v.HasField("metadata")
                value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                out[(v.tag, event.step)] = value
    return out


def test_write_tensorboard(tmp_path, records):
    logdir = tmp_path / "tb"
    try:
        for r in records[:3]:
            lineage_report.write_tensorboard(logdir, r)
        assert len([k for k in lineage_report._WRITERS if k.startswith(str(tmp_path))]) == 1
        scalars = read_scalars(logdir)
    finally:
        lineage_report.close_tensorboard_writers()
    assert scalars[("evolution/accuracy", 0)] == pytest.approx(0.99)
    assert scalars[("evolution/synapses", 1)] == 500
    assert scalars[("evolution/clusters", 2)] == 20
    assert scalars[("evolution/synaptic_efficiency", 2)] == pytest.approx(4.0)
    assert scalars[("evolution/cluster_efficiency", 1)] == pytest.approx(40 / 30, rel=1e-6)
    assert scalars[("layers/conv1/synapses", 1)] == 250
    assert scalars[("layers/dense/clusters", 2)] == 10
    assert {step for (_, step) in scalars} == {0, 1, 2}


def test_records_written_before_tasks_load_and_gain_metric_and_score(tmp_path):
    """Classification run directories older than tasks (records with ``accuracy`` only) still
    load, and their records gain ``metric``/``score`` so acceptance and selection work."""
    old = [make_record(0, 0.99, 1000, 40), make_record(1, 0.98, 500, 30)]
    for r in old:
        del r["metric"], r["score"]
    path = tmp_path / "lineage.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    lineage = Lineage(path)
    assert [r["metric"] for r in lineage.records] == ["accuracy", "accuracy"]
    assert [r["score"] for r in lineage.records] == [0.99, 0.98]
    assert lineage.best("most_accurate")["generation"] == 0
    lineage.append(make_record(2, 0.97, 250, 20))
    assert Lineage(path).last_generation == 2


def test_detection_records_show_their_metric(tmp_path):
    """A task other than classification records its own metric; the table, plots and
    TensorBoard name it, and ``accuracy`` is not required."""
    records = []
    for gen, (score, syn, clu) in enumerate([(0.5, 1000, 40), (0.45, 400, 20)]):
        rec = make_record(gen, score, syn, clu)
        del rec["accuracy"]
        rec["metric"] = "car_moderate_ap_r40"
        rec["metrics"] = {"car_moderate_ap_r40": score, "digits_map": score / 2}
        records.append(rec)
    lineage = Lineage(tmp_path / "lineage.jsonl")
    for rec in records:
        lineage.append(rec)
    table = summary_table(lineage.records)
    assert "car_moderate_ap_r40 (%)" in table.splitlines()[0]
    assert "45.00" in table
    paths = plot_lineage(lineage.records, tmp_path / "plots")
    assert paths[0].name == "car_moderate_ap_r40.png"
