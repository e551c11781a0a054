"""benchmarks/seeds.py: one config from several seeds, checked flags, the per-seed / mean / min
table beside the published results, and a benchmark killed mid-run that resumes (real MNIST)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import seeds  # noqa: E402
from common import BenchmarkError  # noqa: E402
from helpers import binary_env  # noqa: E402
from seeds_plot import plot_seeds  # noqa: E402

SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"


def test_seeds_parse_and_refuse_what_is_not_a_seed_list():
    assert seeds.parse_seeds("0, 1,2") == [0, 1, 2]
    with pytest.raises(BenchmarkError, match="is no seed"):
        seeds.parse_seeds("0,x")
    with pytest.raises(BenchmarkError, match="repeated"):
        seeds.parse_seeds("1,1")
    with pytest.raises(BenchmarkError, match="is no seed"):
        seeds.parse_seeds("-1")


def test_overrides_are_checked_against_the_config_before_any_run():
    assert seeds.check_overrides(["train.epochs=2"], str(SMOKE)) == ["--config.train.epochs=2"]
    with pytest.raises(BenchmarkError, match="train.epochs"):
        seeds.check_overrides(["train.epoch=2"], str(SMOKE))  # the closest key is named
    with pytest.raises(BenchmarkError, match="from --seeds"):
        seeds.check_overrides(["seed=3"], str(SMOKE))
    with pytest.raises(BenchmarkError, match="KEY=VALUE"):
        seeds.check_overrides(["train.epochs"], str(SMOKE))
    with pytest.raises(BenchmarkError, match="no such config"):
        seeds.check_overrides([], "configs/no_such_config.py")


def test_each_seed_runs_the_classification_binary_with_its_own_seed_and_folder(tmp_path):
    command = seeds.seed_command("configs/x.py", 7, tmp_path, ["--config.train.epochs=1"])
    assert command[1:3] == ["-m", "tf_evosyn.bin.evolve_classification"]
    assert "--config.seed=7" in command and f"--workdir={tmp_path / 'seed_7'}" in command
    assert command[-1] == "--config.train.epochs=1"


def _row(seed, val, test, syn, clu, ratio):
    keys = ("validation_accuracy", "test_accuracy", "synaptic_efficiency", "cluster_efficiency")
    values = dict(zip(keys, (val, test, syn, clu), strict=True))
    return {"seed": seed, "generation": seed + 3, **values, "time_ratio": ratio}


def test_mean_and_worst_seed_rows_by_hand():
    rows = [_row(0, 0.991, 0.990, 180.0, 14.5, 2.0), _row(1, 0.989, 0.992, 150.0, 15.0, 2.6)]
    mean, worst = seeds.summarize(rows)
    assert mean["test_accuracy"] == pytest.approx(0.991)
    assert mean["synaptic_efficiency"] == pytest.approx(165.0)
    assert worst["test_accuracy"] == pytest.approx(0.990)  # the lower accuracy
    assert worst["synaptic_efficiency"] == pytest.approx(150.0)
    assert worst["cluster_efficiency"] == pytest.approx(14.5)
    assert worst["time_ratio"] == pytest.approx(2.6)  # the slower seed is the worse one
    assert worst["generation"] is None  # "the worst generation" means nothing
    text = seeds.table(rows, mean, worst)
    for published in ("BC-GHS", "Sparse VD", "125"):
        assert published in text
    assert "99.10" in text and "mean" in text and "min" in text


def _lineage_lines(run_dir: Path) -> list[dict]:
    path = run_dir / "lineage.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_the_figure_marks_every_seed_and_its_chosen_offspring(tmp_path):
    def lineage(shift):
        return [
            {"accepted": True, "test_accuracy": 0.993 - 0.001 * g - shift,
             "synaptic_efficiency": 2.0**g, "cluster_efficiency": 1.5**g}
            for g in range(6)
        ]  # fmt: skip

    lineages = {0: lineage(0.0), 1: lineage(0.001), 2: lineage(0.002)}
    rows = [{"seed": s, **lineages[s][-1]} for s in lineages]
    path = plot_seeds(lineages, rows, seeds.PUBLISHED, tmp_path / "seeds.png", "test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(ValueError):  # a seed whose lineage has no test accuracy cannot plot
        plot_seeds({0: [{"accepted": True}]}, [], (), tmp_path / "bad.png", "test")


@pytest.mark.slow
def test_a_killed_seeds_benchmark_resumes_and_never_reruns_a_finished_seed(tmp_path, datasets_dir):
    workdir, output = tmp_path / "seeds", tmp_path / "seeds.json"
    overrides = ["data.train_limit=600", "data.validation_size=300", "data.test_limit=300"]
    command = [sys.executable, "benchmarks/seeds.py", f"--config={SMOKE}", "--seeds=0,1"]
    command += ["--parallel=1", f"--workdir={workdir}", f"--output={output}"]
    command += [f"--override={o}" for o in overrides]
    env = binary_env(datasets_dir)
    # Kill the benchmark and its run (the whole process group, as a lost machine would) once
    # seed 0 has committed its ancestor and first generation.
    process = subprocess.Popen(
        command, cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 600
    while time.time() < deadline and len(_lineage_lines(workdir / "seed_0")) < 2:
        assert process.poll() is None, "the benchmark ended before it could be killed"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = _lineage_lines(workdir / "seed_0")
    assert 2 <= len(before) < 3, "seed 0 was to be killed mid-run"
    assert not (workdir / "seed_1").exists() and not output.exists()

    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _lineage_lines(workdir / "seed_0")
    assert len(after) == 3  # ancestor + the smoke config's 2 generations
    # Resumed, not restarted: the generations committed before the kill are kept as they were.
    assert after[: len(before)] == before
    results = json.loads(output.read_text())
    assert [r["seed"] for r in results["rows"]] == [0, 1]
    assert all(r["finished"] for r in results["rows"])
    assert len(_lineage_lines(workdir / "seed_1")) == 3
    assert results["min"]["test_accuracy"] <= results["mean"]["test_accuracy"]

    finished = {s: _lineage_lines(workdir / f"seed_{s}") for s in (0, 1)}
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("not re-run") == 2
    assert {s: _lineage_lines(workdir / f"seed_{s}") for s in (0, 1)} == finished
    assert json.loads(output.read_text())["rows"] == results["rows"]
