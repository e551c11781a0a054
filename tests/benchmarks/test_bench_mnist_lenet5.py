"""benchmarks/mnist_lenet5.py: issue 12's verdict (chosen on validation, judged on test), the
FlopsBudget side by side of issue 13, the accuracy-vs-efficiency plots, and the script itself
on a tiny real MNIST run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import lenet5_report as report  # noqa: E402

from tf_evosyn.loop import lineage_report  # noqa: E402

ANCESTOR_SYNAPSES, ANCESTOR_CLUSTERS, ANCESTOR_MACS = 430_500, 580, 2_293_000


def record(generation, val, test, syn_eff=1.0, clu_eff=1.0, macs_ratio=1.0, **extra):
    """A lineage record as the evolution writes it under validation selection."""
    return {
        "generation": generation,
        "metric": "accuracy",
        "score": val,
        "accuracy": val,
        "test_score": test,
        "test_accuracy": test,
        "selection_split": "validation",
        "synapses": round(ANCESTOR_SYNAPSES / syn_eff),
        "clusters": round(ANCESTOR_CLUSTERS / clu_eff),
        "synaptic_efficiency": syn_eff,
        "cluster_efficiency": clu_eff,
        "flops": round(ANCESTOR_MACS / macs_ratio),
        "accepted": extra.pop("accepted", True),
        "seconds": extra.pop("seconds", 100.0),
        "epochs": extra.pop("epochs", 10 if generation == 0 else 3),
        "seed": 0,
        "layers": [],
        **extra,
    }


def lineage(*offspring, ancestor_val=0.993, ancestor_test=0.993, **ancestor_extra):
    return [record(0, ancestor_val, ancestor_test, **ancestor_extra), *offspring]


ISSUE12, STRETCH, MATING = report.TARGETS


def test_target_met_by_an_offspring_chosen_on_validation_and_confirmed_on_test():
    records = lineage(
        record(1, 0.992, 0.992, 20.0, 4.0),
        record(2, 0.991, 0.9905, 160.0, 15.0),
        record(3, 0.985, 0.986, 300.0, 20.0),
    )
    result = report.target_verdict(records, ISSUE12)
    assert result["met"] and result["status"] == "MET" and result["generation"] == 2
    stretch = report.target_verdict(records, STRETCH)
    # Generation 3 has the efficiencies but not 99.0% on validation: the closest is gen 2.
    assert not stretch["met"] and stretch["generation"] == 2


def test_the_test_split_never_chooses_the_offspring():
    # Both meet the target on validation; the more accurate on validation (gen 1) is chosen
    # although gen 2 would pass on test: the verdict is then "not met".
    records = lineage(
        record(1, 0.993, 0.985, 160.0, 15.0),
        record(2, 0.991, 0.995, 170.0, 16.0),
    )
    result = report.target_verdict(records, ISSUE12)
    assert result["generation"] == 1 and not result["met"]
    assert result["test_accuracy"] == pytest.approx(0.985)
    # Swapping the two test scores flips the verdict but never the choice.
    records[1]["test_score"], records[2]["test_score"] = 0.995, 0.985
    swapped = report.target_verdict(records, ISSUE12)
    assert swapped["generation"] == 1 and swapped["met"]


def test_rejected_offspring_and_test_selected_runs_never_meet_a_target():
    rejected = lineage(record(1, 0.995, 0.995, 200.0, 20.0, accepted=False))
    assert report.target_verdict(rejected, ISSUE12)["generation"] is None
    on_test = lineage(record(1, 0.995, 0.995, 200.0, 20.0))
    for r in on_test:
        r["selection_split"] = "test"
    result = report.target_verdict(on_test, ISSUE12)
    assert result["status"] == "NOT MEASURABLE" and not result["met"]


def test_mating_rituals_target_needs_an_m_parent_run():
    strong = record(1, 0.975, 0.972, 260.0, 35.0)
    single = report.target_verdict(lineage(strong), MATING)
    assert single["status"] == "NOT APPLICABLE" and not single["met"]
    two = report.target_verdict(lineage({**strong, "parents": 2}), MATING)
    assert two["met"] and two["generation"] == 1


def test_time_verdict_compares_all_offspring_seconds_with_the_ancestors_training():
    met = report.time_verdict(lineage(*(record(g, 0.99, 0.99, seconds=90.0) for g in (1, 2, 3))))
    assert met["met"] and met["ratio"] == pytest.approx(2.7)
    slow = report.time_verdict(lineage(*(record(g, 0.99, 0.99, seconds=90.0) for g in range(1, 5))))
    assert not slow["met"] and slow["ratio"] == pytest.approx(3.6)
    loaded = report.time_verdict(lineage(record(1, 0.99, 0.99), epochs=0, seconds=0.1))
    assert loaded["status"] == "NOT MEASURABLE" and "ratio" not in loaded


def test_generation_table_has_seconds_per_epoch_ratio_only_when_recorded():
    without = report.generations_table(lineage(record(1, 0.99, 0.991, 2.0, 1.5)))
    assert "| 1 | 99.00 | 99.10 |" in without and "BC-GHS" in without and "280.00x" in without
    with_epochs = report.generations_table(
        lineage(record(1, 0.99, 0.991, seconds_per_epoch=10.0), seconds_per_epoch=40.0)
    )
    assert "| 10.0 | 0.25x | yes |" in with_epochs


def test_macs_verdict_needs_the_reduction_at_equal_or_better_validation_accuracy():
    layer = lineage(record(1, 0.990, 0.99, macs_ratio=2.0), record(2, 0.986, 0.98, macs_ratio=4.0))
    flops_better = lineage(
        record(1, 0.988, 0.98, macs_ratio=4.5),
        record(2, 0.970, 0.97, macs_ratio=9.0, accepted=False),
    )
    arms = {"layer_budget": layer, "flops_budget": flops_better}
    result = report.macs_verdict(arms, "layer_budget", "flops_budget", tolerance=0.01)
    assert result["met"]
    assert result["layer_budget"]["generation"] == 2  # 4.0x at 98.6%, within 1 point
    assert result["flops_budget"]["macs_reduction"] == pytest.approx(4.5, rel=1e-5)
    flops_worse = lineage(record(1, 0.984, 0.98, macs_ratio=5.0))  # more MACs, lower val
    arms["flops_budget"] = flops_worse
    assert not report.macs_verdict(arms, "layer_budget", "flops_budget", 0.01)["met"]
    text = report.side_by_side(arms)
    assert (
        "| 2 | 98.60 | 98.00 | 4.00x |" in text
        and "| 2 | 98.60 | 98.00 | 4.00x | 1.0x | - |" in text
    )


@pytest.mark.parametrize(
    "value, label",
    [(1.0, "1x"), (2.0, "2x"), (100.0, "100x"), (300.00000001, "300x"), (0.5, "0.5x")],
)
def test_efficiency_ticks_read_as_plain_numbers(value, label):
    assert lineage_report.efficiency_tick_label(value) == label


def test_accuracy_vs_efficiency_plots_mark_generations_and_anchors(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = lineage(
        record(1, 0.992, 0.991, 2.0, 1.5), record(2, 0.98, 0.979, 9.0, 3.0, accepted=False)
    )
    paths = lineage_report.plot_score_vs_efficiency(
        records, tmp_path, anchors=report.PUBLISHED, prefix="x_"
    )
    assert [Path(p).name for p in paths] == [
        "x_test_accuracy_vs_synaptic_efficiency.png",
        "x_test_accuracy_vs_cluster_efficiency.png",
    ]
    for path in paths:
        assert Path(path).read_bytes().startswith(b"\x89PNG")

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lineage_report._draw_score_vs_efficiency(
        ax, records, "synaptic_efficiency", report.PUBLISHED, "test accuracy (%)"
    )
    fig.canvas.draw()
    labels = {t.get_text() for t in ax.get_xticklabels() if t.get_text()}
    assert {"1x", "10x", "100x"} <= labels and not any("^" in t for t in labels)
    line = ax.get_lines()[0]  # every generation, in order, the rejected one included
    assert list(line.get_xdata()) == [1.0, 2.0, 9.0]
    assert list(line.get_ydata()) == pytest.approx([99.3, 99.1, 97.9])
    texts = {t.get_text() for t in ax.texts}
    assert "BC-GHS (Louizos et al. 2017)" in texts and "Sparse VD (Molchanov et al. 2017)" in texts


def test_the_default_config_is_issue_12s_recipe():
    """`python benchmarks/mnist_lenet5.py` without flags measures the config that is meant to
    reach the issue's targets: LeNet-5 with ReLU convolutions, evolved to 14x / 150x."""
    import common

    from tf_evosyn.bin.config_cli import load_config_file

    config = load_config_file(str(common.LENET5_CONFIG))
    assert config.model.conv_activation == "relu"
    assert dict(config.evolution.stop_at)["cluster_efficiency"] == 14.0
    assert dict(config.evolution.stop_at)["synaptic_efficiency"] == 150.0
    assert config.data.validation_size == 5000 and config.evolution.select_on == "validation"
    # The heredity every seed 0-2 reached >= 99.0% test with (the papers' 1.0 did not).
    assert config.evolution.synapse_sharpness == config.evolution.cluster_sharpness == 3.0
    assert config.evolution.final_epochs == 40


# ------------------------------------------------------------ the script on a tiny real run

SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"
TINY = [
    "--config.data.train_limit=600",
    "--config.data.validation_size=200",
    "--config.data.test_limit=200",
    "--config.evolution.generations=1",
]


def _bench(tmp_path, datasets_dir, *args):
    env = dict(
        os.environ,
        EVOSYN_DATA_DIR=str(datasets_dir),
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mnist_lenet5.py"), f"--config={SMOKE}", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.mark.slow
def test_benchmark_runs_compares_and_reports_a_finished_run(tmp_path, datasets_dir):
    run, other = tmp_path / "run", tmp_path / "run_flops_budget"
    out = _bench(
        tmp_path,
        datasets_dir,
        f"--workdir={run}",
        "--compare=flops_budget",
        f"--output={tmp_path / 'bench.json'}",
        f"--compare_output={tmp_path / 'side.json'}",
        f"--plots_dir={tmp_path / 'plots'}",
        *TINY,
    )
    assert "BC-GHS (Louizos et al. 2017)" in out and "(4) evolution <= 3x" in out
    assert "flops_budget against layer_budget" in out and "reaches layer_budget's" in out
    results = json.loads((tmp_path / "bench.json").read_text())
    assert [r["generation"] for r in results["lineage"]] == [0, 1]
    assert len(results["verdict"]["targets"]) == 3
    side = json.loads((tmp_path / "side.json").read_text())
    assert set(side["runs"]) == {"layer_budget", "flops_budget"}
    # The second arm starts from the first arm's trained ancestor.
    assert side["runs"]["flops_budget"]["lineage"][0]["score"] == results["lineage"][0]["score"]
    # PNGs are named after --output (bench.json -> bench_test_accuracy_vs_*.png).
    assert len(list((tmp_path / "plots").glob("bench_test_accuracy_vs_*.png"))) == 2

    # Reading the finished runs again (nothing trained) prints the same figures.
    before = (run / "lineage.jsonl").read_text()
    again = _bench(
        tmp_path,
        datasets_dir,
        f"--workdir={run}",
        "--report_only",
        f"--other_workdir={other}",
        f"--output={tmp_path / 'again.json'}",
        f"--compare_output={tmp_path / 'again_side.json'}",
        f"--plots_dir={tmp_path / 'plots'}",
    )
    assert (run / "lineage.jsonl").read_text() == before
    table = [line for line in out.splitlines() if line.startswith("| 1 |")]
    assert table and table[0] in again
    assert json.loads((tmp_path / "again.json").read_text())["verdict"] == results["verdict"]

    # Without --workdir / --output the run directory and the JSON are named after the config.
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"bench_{SMOKE.stem}").symlink_to(run)
    _bench(tmp_path, datasets_dir, "--report_only", f"--plots_dir={tmp_path / 'plots'}")
    named = tmp_path / "benchmarks" / "results" / "mnist_lenet5_smoke.json"
    named = json.loads(named.read_text())
    assert named["workdir"] == f"runs/bench_{SMOKE.stem}"
    assert named["verdict"] == results["verdict"]


def test_a_final_fine_tuning_is_labelled_chosen_like_any_offspring_and_timed():
    """The final fine-tuning of best/ (same counts, one more generation) is marked in the
    table, can be the offspring a target is judged on, and its seconds count as evolution."""
    records = lineage(
        record(1, 0.989, 0.9874, 155.6, 14.5, seconds=200.0),
        record(2, 0.9914, 0.9899, 155.6, 14.5, seconds=120.0, final=True, parent=1),
    )
    table = report.generations_table(records)
    assert "| 2 (final) |" in table and "| 1 |" in table
    assert lineage_report.generation_label(records[2]) == "2 (final)"
    result = report.target_verdict(records, ISSUE12)
    assert (result["generation"], result["status"]) == (2, "NOT MET")  # 98.99% test < 99.0%
    assert result["why"] == "below the target on test"
    assert report.time_verdict(records)["offspring_seconds"] == 320.0
    # Same counts as its parent: the later generation is best/, in the run and in the report.
    assert report.best_generation(records) == 2
    assert "| 2 (final) |" in report.generations_table(records)
