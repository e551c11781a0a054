"""What the benchmark scripts share: the machine they ran on, JSON results, checked TFLite
conversion, TFLite timing (at a given input size, or interleaved over several networks), and the
table layouts (markdown and aligned plain text)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tf_evosyn.storage import io_utils

REPO = Path(__file__).resolve().parent.parent
# Issue 12's recipe (LeNet-5 with ReLU convolutions): the LeNet-5 / MNIST benchmarks' default, so
# the one default command measures the config that reaches the targets.
LENET5_CONFIG = REPO / "configs" / "lenet5_relu_mnist.py"


def config_stem(flag_name: str = "config") -> str:
    """The file name (no suffix) of the config file flag ``flag_name`` was given."""
    from absl import flags
    from ml_collections import config_flags

    return Path(config_flags.get_config_filename(flags.FLAGS[flag_name])).stem


def default_workdir(flag_name: str = "config") -> str:
    """``runs/bench_<config>``: benchmarks run on the same config share (and resume) one run."""
    return f"runs/bench_{config_stem(flag_name)}"


class BenchmarkError(ValueError):
    """A flag or run directory that cannot work; the message names the fix."""


def machine() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }


def write_results(path: str | Path, results: dict) -> Path:
    """Atomically write ``results`` (plus the machine) as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_write_json(path, {**results, "machine": machine()})
    print(f"Wrote {path}")
    return path


def read_run(workdir: str | Path) -> tuple[list[dict], dict]:
    """The lineage records and the config (``config.json``) of a run directory, read only."""
    from tf_evosyn.loop.lineage import LINEAGE_FILENAME, Lineage
    from tf_evosyn.storage import fs

    lineage_path = fs.join(workdir, LINEAGE_FILENAME)
    if not fs.exists(lineage_path):
        raise FileNotFoundError(
            f"{lineage_path} not found: {workdir} is no run directory with a finished "
            "generation; run the benchmark without --report_only first"
        )
    config_path = fs.join(workdir, "config.json")
    config = json.loads(fs.read_text(config_path)) if fs.exists(config_path) else {}
    return Lineage(lineage_path).records, config


def tflite_latency_at(model, input_shape: Sequence[int], runs: int, threads: int = 1) -> dict:
    """Batch-1 TFLite (XNNPACK) latency of ``model``'s network rebuilt at ``input_shape``."""
    from tf_evosyn.export.artifacts import with_input_shape, write_tflite_pair
    from tf_evosyn.hardware.latency import tflite_latency

    if tuple(model.inputs[0].shape[1:]) != tuple(input_shape):
        model = with_input_shape(model, tuple(input_shape))
    with tempfile.TemporaryDirectory(prefix="evosyn_bench_") as tmp:
        path = Path(tmp) / "model.tflite"
        write_tflite_pair(model, path, Path(tmp) / "model_int8.tflite")
        return tflite_latency(path, (1, *input_shape), threads=threads, runs=runs, warmup=3)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table (what the README and closing notes paste)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def config_json(config) -> dict:
    return json.loads(config.to_json_best_effort(sort_keys=True))


def aligned_table(rows: Sequence[Sequence[str]], left_first: bool = True) -> str:
    """A plain-text table: the first row is the header, underlined with dashes; columns are
    right-aligned (the first left-aligned with ``left_first``), two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [
            c.ljust(w) if j == 0 and left_first else c.rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def efficiency_text(value: float) -> str:
    """``12.34x``, or ``inf`` for a network with nothing left to count."""
    return "inf" if math.isinf(value) else f"{value:.2f}x"


def promised_saving_share(speedup: float, macs_ratio: float) -> float | None:
    """(1 - 1/speedup) / (1 - 1/MACs ratio): the part of the saving the MACs promised that the
    measured speedup delivers; None when nothing was promised (MACs ratio <= 1)."""
    if macs_ratio <= 1.0 + 1e-9:
        return None
    return (1 - 1 / speedup) / (1 - 1 / macs_ratio)


def checked_tflite(model, folder: Path, reference, probe: np.ndarray) -> dict:
    """Float32 TFLite file of ``model`` (through a SavedModel in ``folder``), checked against
    ``reference`` on ``probe``: {saved_model, tflite (paths), tflite_bytes,
    tflite_max_abs_difference}."""
    from tf_evosyn.export.artifacts import convert_to_tflite, run_tflite, save_serving_model

    saved = save_serving_model(model, folder / "saved_model")
    path = convert_to_tflite(saved, folder / "model.tflite")
    expected = reference(probe, training=False).numpy()
    return {
        "saved_model": saved,
        "tflite": path,
        "tflite_bytes": path.stat().st_size,
        "tflite_max_abs_difference": float(np.abs(run_tflite(path, probe) - expected).max()),
    }


def interleaved_tflite_latency(
    paths: dict, shape: Sequence[int], threads: int, runs: int, warmup: int, rounds: int
) -> dict:
    """key -> {median_ms, p90_ms, round_medians_ms, round_cpu_medians_ms}: every TFLite file
    timed once per round, round after round, so load from other processes hits every model
    alike; the figures are medians over rounds of the per-round median (p90 likewise)."""
    from tf_evosyn.hardware.latency import tflite_latency

    samples = {key: [] for key in paths}
    for _ in range(rounds):
        for key, path in paths.items():
            samples[key].append(tflite_latency(path, tuple(shape), threads, runs, warmup))
    return {
        key: {
            "median_ms": float(statistics.median(r["median_ms"] for r in results)),
            "p90_ms": float(statistics.median(r["p90_ms"] for r in results)),
            "round_medians_ms": [r["median_ms"] for r in results],
            "round_cpu_medians_ms": [r["cpu_median_ms"] for r in results],
        }
        for key, results in samples.items()
    }


def save_png(figure, path: str | os.PathLike) -> Path:
    """Writes a matplotlib ``figure`` next to ``path`` under a temporary name, then renames it
    into place (a killed benchmark never leaves a truncated PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only plotting needs it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            FigureCanvasAgg(figure).print_png(stream)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
