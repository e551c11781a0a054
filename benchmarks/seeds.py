"""Benchmark: one config evolved from several seeds (how much of one seed's result is luck?).

    python benchmarks/seeds.py [--config=configs/lenet5_relu_mnist.py] [--seeds=0,1,2]
        [--parallel=N] [--workdir=runs/bench_seeds_<config>] [--report_only]
        [--output=benchmarks/results/seeds_<config>.json] [--override=KEY=VALUE ...]

Seed S runs ``evosyn-classify --config=<config> --config.seed=S --workdir=<workdir>/seed_S
[--config.KEY=VALUE ...]`` (as ``python -m tf_evosyn.bin.evolve_classification``, logging to
``<workdir>/seed_S.log``), ``--parallel`` at once (default min(seeds, os.cpu_count()): at most
2 on 2 cores; parallel runs share the cores, so ``--parallel=1`` times each alone). Reported
(printed, and JSON): per seed the offspring its run chose (as mnist_lenet5.py picks it), its
validation / test accuracy, efficiencies and evolution seconds over the ancestor's training; a
``mean`` row, a ``min`` row (the worst seed per column: highest time ratio) and the published
results. Resume a killed benchmark by running it again: a seed whose run finished (status.json
at the lineage's last generation) under this command (``seed_S.done.json``) is not re-run, the
others resume after their last committed generation. ``--report_only`` runs nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import lenet5_report as report  # noqa: E402
from common import BenchmarkError  # noqa: E402
from seeds_plot import plot_seeds  # noqa: E402

FLAGS = flags.FLAGS
BINARY = "tf_evosyn.bin.evolve_classification"
MARKER = "seed_{}.done.json"  # the command of a run that exited 0
# Row fields that are wall-clock measurements (a resumed run differs from an uninterrupted one).
TIMING_KEYS = ("ancestor_seconds", "evolution_seconds", "time_ratio")
EFF_KEYS = ("synaptic_efficiency", "cluster_efficiency")
SUMMARY_KEYS = ("generation", "validation_accuracy", "test_accuracy", *EFF_KEYS, "time_ratio")
WORST_IS_HIGHEST = ("time_ratio",)
# The single-parent results a seed is compared with (BC-GHS, Sparse VD, the papers).
PUBLISHED = tuple(p for p in report.PUBLISHED if not p["label"].startswith("Mating Rituals"))
_SEEDS_HELP = "pass a comma list of distinct non-negative integers, e.g. --seeds=0,1,2"


def _define_flags() -> None:
    # Not at import: tests import this module beside binaries that define --workdir/--output.
    flags.DEFINE_string("config", str(common.LENET5_CONFIG), "Experiment config file.")
    flags.DEFINE_string("seeds", "0,1,2", "Comma list of seeds, one run each.")
    flags.DEFINE_integer("parallel", None, "Runs at once (default: min(seeds, CPUs)).")
    flags.DEFINE_string("workdir", None, "Holds seed_S/ (default: runs/bench_seeds_<config>).")
    flags.DEFINE_string("output", None, "JSON (default: benchmarks/results/seeds_<config>.json).")
    flags.DEFINE_bool("report_only", False, "Read the run directories; run nothing.")
    flags.DEFINE_multi_string("override", [], "KEY=VALUE: --config.KEY=VALUE for every run.")


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; BenchmarkError (one line) for anything else."""
    seeds = []
    for item in (s.strip() for s in text.split(",")):
        if not re.fullmatch(r"[0-9]+", item):
            raise BenchmarkError(f"--seeds={text}: {item!r} is no seed; {_SEEDS_HELP}")
        seeds.append(int(item))
    if len(set(seeds)) != len(seeds):
        raise BenchmarkError(f"--seeds={text}: a seed is repeated; {_SEEDS_HELP}")
    return seeds


def check_overrides(overrides: list[str], config: str) -> list[str]:
    """The ``--config.KEY=VALUE`` arguments of ``--override=KEY=VALUE``; keys are checked
    against the config file (BenchmarkError names the closest real key)."""
    from tf_evosyn.bin.config_cli import config_keys, load_config_file, unknown_key_message

    if not Path(config.split(":", 1)[0]).is_file():
        raise BenchmarkError(f"--config={config}: no such config file.")
    known = config_keys(load_config_file(config))
    args = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise BenchmarkError(f"--override={override}: expected KEY=VALUE, e.g. train.epochs=1")
        if key == "seed":
            raise BenchmarkError(f"--override={override}: the seeds come from --seeds.")
        if key not in known:
            raise BenchmarkError(f"--override={override}: {unknown_key_message(key, known)}")
        args.append(f"--config.{key}={value}")
    return args


def seed_command(config: str, seed: int, workdir: Path, overrides: list[str]) -> list[str]:
    run_dir = workdir / f"seed_{seed}"
    args = [f"--config={config}", f"--config.seed={seed}", f"--workdir={run_dir}", *overrides]
    return [sys.executable, "-m", BINARY, *args]


def is_finished(workdir: Path, seed: int, command: list[str] | None = None) -> bool:
    """status.json: finished or stopped at the lineage's last generation (under ``command``)."""
    run_dir, marker = workdir / f"seed_{seed}", workdir / MARKER.format(seed)
    status = run_dir / "status.json"
    if not status.is_file() or (command and not marker.is_file()):
        return False
    if command and json.loads(marker.read_text()).get("command") != command[1:]:
        return False
    state, last = json.loads(status.read_text()), common.read_run(run_dir)[0][-1]["generation"]
    return state.get("state") in ("finished", "stopped") and state.get("last_generation") == last


def _start(seed: int, command: list[str], workdir: Path) -> tuple:
    log = open(workdir / f"seed_{seed}.log", "a")  # noqa: SIM115 (run_seeds closes it)
    log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n")
    log.flush()
    print(f"seed {seed}: running, log {log.name}", flush=True)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log


def run_seeds(commands: dict[int, list[str]], workdir: Path, parallel: int) -> None:
    """Run every seed's command whose run has not finished, ``parallel`` at once."""
    from tf_evosyn.storage.io_utils import atomic_write_json

    workdir.mkdir(parents=True, exist_ok=True)
    pending = [s for s, command in commands.items() if not is_finished(workdir, s, command)]
    for seed in (s for s in commands if s not in pending):
        print(f"seed {seed}: finished in {workdir / f'seed_{seed}'}, not re-run", flush=True)
    running, failed = {}, []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                seed = pending.pop(0)
                running[seed] = _start(seed, commands[seed], workdir)
            time.sleep(0.5)
            for seed, (process, log) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                del running[seed]
                if process.returncode == 0:
                    marker = workdir / MARKER.format(seed)
                    atomic_write_json(marker, {"command": commands[seed][1:]})
                    print(f"seed {seed}: done", flush=True)
                else:
                    failed.append(seed)
                    tail = Path(log.name).read_text().strip().splitlines()[-1:]
                    print(f"seed {seed}: FAILED: {' '.join(tail)}", flush=True)
    finally:  # interrupted (Ctrl-C, SIGTERM): no run outlives the benchmark
        for process, log in running.values():
            process.kill()
            process.wait()
            log.close()
    if failed:
        logs = ", ".join(str(workdir / f"seed_{s}.log") for s in failed)
        raise BenchmarkError(f"seed(s) {', '.join(map(str, failed))} failed; see {logs}")


def seed_row(seed: int, records: list[dict], finished: bool = True) -> dict:
    """The offspring the run chose (best/: the ancestor if none was accepted); time ratio."""
    generation = report.best_generation(records)
    record = records[0 if generation is None else generation]
    timing = report.time_verdict(records)
    row = {"seed": seed, "generation": record["generation"], "final": bool(record.get("final"))}
    row["validation_accuracy"] = record.get("score", record.get("accuracy"))
    row["test_accuracy"] = record.get("test_accuracy", record.get("test_score"))
    row.update({k: record[k] for k in EFF_KEYS})
    row.update(ancestor_seconds=timing["ancestor_seconds"])
    row.update(evolution_seconds=timing["offspring_seconds"], time_ratio=timing.get("ratio"))
    return {**row, "finished": finished}  # time_ratio None: the ancestor was loaded, not trained


def summarize(rows: list[dict]) -> tuple[dict, dict]:
    """(mean, min) rows; ``min`` = the worst seed per column (the highest time ratio)."""
    mean, worst = {"seed": "mean"}, {"seed": "min"}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in rows if r.get(key) is not None]
        mean[key] = statistics.fmean(values) if values else None
        pick = max if key in WORST_IS_HIGHEST else min
        worst[key] = pick(values) if values and key != "generation" else None
    return mean, worst


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100.0 * x:.2f}"


def _eff(x: float | None) -> str:
    return "-" if x is None else common.efficiency_text(x)


def table(rows: list[dict], mean: dict, worst: dict) -> str:
    """Seeds, mean and min rows, then the published results, as an aligned text table."""
    header = ["seed", "gen", "val %", "test %", "syn. eff.", "clu. eff.", "evolution / ancestor"]
    lines = [header]
    for r in [*rows, mean, worst]:
        gen, ratio = r["generation"], r["time_ratio"]
        gen = f"{gen:.1f}" if isinstance(gen, float) else "-" if gen is None else str(gen)
        cells = [str(r["seed"]), gen + (" (final)" if r.get("final") else "")]
        cells += [_pct(r["validation_accuracy"]), _pct(r["test_accuracy"])]
        cells += [_eff(r[k]) for k in EFF_KEYS]
        lines.append([*cells, "-" if ratio is None else f"{ratio:.2f}x"])
    for p in PUBLISHED:
        accuracy = _pct(p["accuracy"]) if p["accuracy"] else "near ancestor"
        lines.append([p["label"], "-", "-", accuracy, *(_eff(p[k]) for k in EFF_KEYS), "-"])
    return common.aligned_table(lines)


def _flags() -> tuple[list[int], list[str], int, Path, str]:
    """Every flag checked before any work: (seeds, override args, parallel, workdir, output)."""
    seeds, overrides = parse_seeds(FLAGS.seeds), check_overrides(FLAGS.override, FLAGS.config)
    parallel = min(len(seeds), os.cpu_count() or 1) if FLAGS.parallel is None else FLAGS.parallel
    if parallel < 1:
        raise BenchmarkError(f"--parallel={FLAGS.parallel}: must be >= 1.")
    stem = Path(FLAGS.config.split(":", 1)[0]).stem
    output = FLAGS.output or f"benchmarks/results/seeds_{stem}.json"
    return seeds, overrides, parallel, Path(FLAGS.workdir or f"runs/bench_seeds_{stem}"), output


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # runs `finally`
    try:
        seeds, overrides, parallel, workdir, output = _flags()
        commands = {s: seed_command(FLAGS.config, s, workdir, overrides) for s in seeds}
        if not FLAGS.report_only:
            run_seeds(commands, workdir, parallel)
        runs = {s: common.read_run(workdir / f"seed_{s}")[0] for s in seeds}
        rows = [seed_row(s, records, is_finished(workdir, s)) for s, records in runs.items()]
    except (BenchmarkError, FileNotFoundError) as error:
        sys.exit(f"seeds.py: error: {error}")
    for row in (r for r in rows if not r["finished"]):
        print(f"seed {row['seed']}: run not finished; reporting its generations so far")
    mean, worst = summarize(rows)
    print()
    print(f"{FLAGS.config} over seeds {', '.join(map(str, seeds))} (the offspring each run chose;")
    print("min = the worst seed per column), beside the published results on LeNet-5-Caffe:")
    print(table(rows, mean, worst))
    results = dict(benchmark="seeds", config=str(FLAGS.config), overrides=list(FLAGS.override))
    results["commands"] = {s: shlex.join(["evosyn-classify", *c[3:]]) for s, c in commands.items()}
    results.update(workdir=str(workdir), rows=rows, mean=mean, min=worst)
    common.write_results(output, {**results, "published": list(PUBLISHED)})
    figure = plot_seeds(runs, rows, PUBLISHED, Path(output).with_suffix(".png"), FLAGS.config)
    print(f"figure: {figure}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
