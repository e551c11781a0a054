"""What the benchmark scripts share: the machine they ran on, JSON results, TFLite timing of a
network at a given input size, and the paper-vs-ours table layout."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tf_evosyn import io_utils


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
    from tf_evosyn import fs
    from tf_evosyn.lineage import LINEAGE_FILENAME, Lineage

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
    from tf_evosyn.export import with_input_shape, write_tflite_pair
    from tf_evosyn.latency import tflite_latency

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
