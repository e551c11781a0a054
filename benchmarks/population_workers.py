"""Population workers: wall time per generation with N = 1, 2, ... jobs sharing the candidates.

    python benchmarks/population_workers.py     # P = 2, LeNet-5 on MNIST: 1x1, 2x1, 1x<cores>
    python benchmarks/population_workers.py --runs=1x1,4x1 --population=4

A run ``NxT`` is ``evosyn-classify`` as N processes on one run directory (``--worker_index=i
--num_workers=N``), each with T TensorFlow threads: ``2x1`` against ``1x1`` is two devices
against one (as two GPUs against one), ``1x2`` is one job on the same two cores. The
generations' wall time is the run's wall time minus its ancestor's training (recorded in
generation 0), divided by the generations. Runs with the same T must have the same lineage
(timings aside; TensorFlow's kernels round differently with another thread count, so runs with
another T differ slightly): the table says whether they do. Writes
``benchmarks/results/population_workers.json``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags
from common import REPO, format_table, read_run, write_results

from tf_evosyn.loop.lineage import without_timing

RUNS = flags.DEFINE_list(
    "runs", ["1x1", "2x1", "1xall"], "Runs to compare: N workers x T threads each (all = cores)."
)
POPULATION = flags.DEFINE_integer("population", 2, "Candidates per generation (P).")
CONFIG = flags.DEFINE_string(
    "config", str(REPO / "configs" / "lenet5_relu_mnist.py"), "Config file of the runs."
)
OVERRIDES = flags.DEFINE_list(
    "overrides",
    [
        "--config.train.epochs=1",
        "--config.evolution.generations=2",
        "--config.evolution.epochs_per_generation=3",
        "--config.evolution.final_epochs=0",
        "--config.log.fit_verbose=0",
    ],
    "Config overrides of every run (a shortened main job by default).",
)
WORKDIR = flags.DEFINE_string(
    "workdir", "runs/bench_population_workers", "Parent of the runs' directories."
)
OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/population_workers.json", "JSON results file."
)


def run_with_workers(workdir: Path, count: int, threads: int) -> float:
    """Run the evolution as ``count`` worker processes; returns the wall seconds."""
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh run: the wall time must include every generation
    command = [
        sys.executable,
        "-m",
        "tf_evosyn.bin.evolve_classification",
        f"--config={CONFIG.value}",
        f"--workdir={workdir}",
        f"--config.evolution.population={POPULATION.value}",
        f"--num_workers={count}",
        *OVERRIDES.value,
    ]
    env = dict(
        os.environ,
        TF_NUM_INTRAOP_THREADS=str(threads),
        TF_NUM_INTEROP_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    start = time.time()
    processes = [
        subprocess.Popen([*command, f"--worker_index={i}"], env=env, cwd=REPO, text=True)
        for i in range(count)
    ]
    failed = [i for i, p in enumerate(processes) if p.wait() != 0]
    if failed:
        raise SystemExit(f"worker(s) {failed} of the N={count} run failed; see their output")
    return time.time() - start


def main(argv: list[str]) -> None:
    del argv
    cores = os.cpu_count() or 1
    runs = []
    for text in RUNS.value:
        count, _, threads = text.partition("x")
        runs.append((int(count), cores if threads == "all" else int(threads or 1)))
    rows, results, references = [], [], {}
    for count, threads in runs:
        workdir = Path(WORKDIR.value) / f"n{count}x{threads}"
        wall = run_with_workers(workdir, count, threads)
        records, _ = read_run(workdir)
        evolved = [r for r in records[1:] if not r.get("final")]
        generations_wall = wall - records[0]["seconds"]
        lineage = without_timing(records)
        reference = references.setdefault(threads, lineage)
        result = {
            "workers": count,
            "threads_per_worker": threads,
            "wall_seconds": wall,
            "ancestor_seconds": records[0]["seconds"],
            "generations": len(evolved),
            "seconds_per_generation": generations_wall / max(1, len(evolved)),
            "same_lineage_as_first_with_these_threads": lineage == reference,
            "final_score": records[-1]["score"],
        }
        results.append(result)
    base = results[0]["seconds_per_generation"]
    for r in results:
        r["speedup"] = base / r["seconds_per_generation"]
        rows.append(
            [
                str(r["workers"]),
                str(r["threads_per_worker"]),
                f"{r['wall_seconds']:.0f}",
                f"{r['ancestor_seconds']:.0f}",
                f"{r['seconds_per_generation']:.0f}",
                f"{r['speedup']:.2f}x",
                "same" if r["same_lineage_as_first_with_these_threads"] else "DIFFERS",
            ]
        )
    header = ["N", "threads/worker", "wall s", "ancestor s", "s/generation", "speedup"]
    header.append("lineage vs first run with these threads")
    print(f"P = {POPULATION.value} candidates per generation, {cores} cores")
    print(format_table(header, rows))
    write_results(
        OUTPUT.value,
        {
            "benchmark": "population_workers",
            "config": CONFIG.value,
            "population": POPULATION.value,
            "overrides": OVERRIDES.value,
            "runs": results,
        },
    )


if __name__ == "__main__":
    app.run(main)
