"""Export an evolved network for deployment: ``evosyn-export --workdir=RUN --output=OUT``.

Writes the compacted offspring (default: the run's best, from ``best/record.json``; or
``--generation=N``) to OUT as ``saved_model/``, ``model.keras``, ``model.tflite`` and
``model_int8.tflite``, plus ``export_report.json`` comparing it with the ancestor (generation 0):
parameters, MACs, file sizes, batch-1 TFLite latency (1 thread) and the largest output difference
of every artifact vs the Keras model on real test images from the run's config.

Runs of both binaries export: a detection run's SavedModel also returns decoded boxes, and its
report adds the batch-1 TFLite latency at the paper's input size (1248x384). What differs per
task comes from :func:`tf_evosyn.runs.registry.export_spec`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import ml_collections
from absl import app, flags

import tf_evosyn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tf_evosyn.core.model_io import load_model
from tf_evosyn.data import DataError
from tf_evosyn.export.artifacts import ARTIFACTS, export_model, with_input_shape, write_tflite_pair
from tf_evosyn.export.target import ExportError, resolve_target
from tf_evosyn.hardware.latency import tflite_latency
from tf_evosyn.loop.lineage import score_of
from tf_evosyn.runs.registry import export_spec
from tf_evosyn.storage import fs, io_utils

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A run directory made by evosyn-classify or evosyn-detect."
)
_OUTPUT = flags.DEFINE_string("output", None, "Directory that receives the artifacts.")
_GENERATION = flags.DEFINE_integer(
    "generation", None, "Generation to export (must be accepted); default: the run's best."
)
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 256, "Real test images used to check every artifact against Keras."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Override the run config's data.data_dir (e.g. the data moved)."
)
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 200, "Timed TFLite invokes per model.")
flags.mark_flags_as_required(["workdir", "output"])

REPORT_FILENAME = "export_report.json"


def _model_entry(record: dict, exported: dict, latency: dict) -> dict:
    return {
        "generation": record["generation"],
        "metric": record.get("metric", "accuracy"),
        "score": score_of(record),
        "synapses": record["synapses"],
        "clusters": record["clusters"],
        "parameters": exported["parameters"]["exported"],
        "masked_parameters": exported["parameters"]["model"],
        "macs": exported["macs"]["exported"],
        "masked_macs": exported["macs"]["model_dense"],
        "living_macs": exported["macs"]["model_living"],
        "file_bytes": exported["file_bytes"],
        "tflite_latency": latency,
        "max_abs_difference": exported["max_abs_difference"],
    }


def export_run(
    workdir: str | Path,
    output: str | Path,
    generation: int | None = None,
    num_images: int = 256,
    data_dir: str | None = None,
    latency_runs: int = 200,
) -> dict:
    """Export one generation of a run to ``output`` and write its report (see module doc).

    ``workdir`` and ``output`` may be URLs (``gs://...``): a remote ``output`` is exported
    locally, then uploaded, its report last (a report means the export is whole)."""
    if fs.is_remote(output):
        with tempfile.TemporaryDirectory(prefix="evosyn_export_") as staged:
            report = export_run(workdir, staged, generation, num_images, data_dir, latency_runs)
            fs.copy_tree(staged, output, skip=(REPORT_FILENAME,))
        io_utils.atomic_write_json(fs.join(output, REPORT_FILENAME), report)
        return report
    if num_images < 1:
        raise ExportError(f"--num_images must be >= 1, got {num_images}.")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ExportError(f"--output={output} is an existing file; give a directory path.")
    target = resolve_target(workdir, generation)
    config = ml_collections.ConfigDict(target["config"])
    if data_dir:
        config.data.data_dir = data_dir
    spec = export_spec(config, num_images)  # real images, decoding, sizes of the task
    images = spec.images
    shape = (1, *images.shape[1:])

    def measure(record: dict, path: Path, out_dir: Path) -> dict:
        exported = export_model(
            load_model(path),
            out_dir,
            images,
            postprocess=spec.postprocess,
            preprocess_images=False,
        )
        latency = tflite_latency(out_dir / "model.tflite", shape, threads=1, runs=latency_runs)
        entry = _model_entry(record, exported, latency)
        if spec.paper_input_shape and tuple(spec.paper_input_shape) != tuple(images.shape[1:]):
            entry["paper_input_shape"] = list(spec.paper_input_shape)
            entry["tflite_latency_paper_size"] = _paper_size_latency(
                out_dir / ARTIFACTS["keras"], spec.paper_input_shape, latency_runs
            )
        return entry

    offspring = measure(target["offspring"], target["offspring_path"], output)
    with tempfile.TemporaryDirectory(prefix="evosyn_export_ancestor_") as tmp:
        # The ancestor is exported the same way (to a scratch directory) to compare like for like.
        ancestor = measure(target["ancestor"], target["ancestor_path"], Path(tmp))

    def ratio(key: str) -> float | None:
        return ancestor[key] / offspring[key] if offspring[key] else None

    report = {
        "workdir": fs.absolute(workdir),
        "generation": offspring["generation"],
        "test_images": len(images),
        "task": spec.task,
        "data": spec.description,
        "decoding": spec.decoding,
        "artifacts": dict(ARTIFACTS),
        "ancestor": ancestor,
        "offspring": offspring,
        "reduction": {
            "parameters": ratio("parameters"),
            "macs": ratio("macs"),
            "tflite_bytes": ancestor["file_bytes"]["tflite"] / offspring["file_bytes"]["tflite"],
            "tflite_latency": (
                ancestor["tflite_latency"]["median_ms"] / offspring["tflite_latency"]["median_ms"]
            ),
        },
    }
    if "tflite_latency_paper_size" in offspring:
        report["reduction"]["tflite_latency_paper_size"] = (
            ancestor["tflite_latency_paper_size"]["median_ms"]
            / offspring["tflite_latency_paper_size"]["median_ms"]
        )
    io_utils.atomic_write_json(output / REPORT_FILENAME, report)
    return report


def _paper_size_latency(keras_path: Path, input_shape, runs: int) -> dict:
    """Batch-1 TFLite latency of the exported (compacted) network at ``input_shape``."""
    from tf_evosyn._keras import keras

    model = with_input_shape(keras.models.load_model(keras_path), tuple(input_shape))
    with tempfile.TemporaryDirectory(prefix="evosyn_paper_size_") as tmp:
        path = Path(tmp) / "model.tflite"
        write_tflite_pair(model, path, Path(tmp) / "model_int8.tflite")
        return tflite_latency(path, (1, *input_shape), threads=1, runs=runs)


def _print_summary(report: dict, output: str) -> None:
    rows = [("", "ancestor", "offspring")]
    a, o = report["ancestor"], report["offspring"]
    rows.append(("generation", str(a["generation"]), str(o["generation"])))
    rows.append(("parameters", f"{a['parameters']:,}", f"{o['parameters']:,}"))
    rows.append(("MACs", f"{a['macs']:,}", f"{o['macs']:,}"))
    rows.append(
        ("model.tflite bytes", f"{a['file_bytes']['tflite']:,}", f"{o['file_bytes']['tflite']:,}")
    )
    rows.append(
        (
            "TFLite ms (1 thread)",
            f"{a['tflite_latency']['median_ms']:.4f}",
            f"{o['tflite_latency']['median_ms']:.4f}",
        )
    )
    if "tflite_latency_paper_size" in o:
        rows.append(
            (
                f"TFLite ms at {o['paper_input_shape'][:2]}",
                f"{a['tflite_latency_paper_size']['median_ms']:.4f}",
                f"{o['tflite_latency_paper_size']['median_ms']:.4f}",
            )
        )
    for name in report["artifacts"]:
        rows.append(
            (
                f"max |diff| {name}",
                f"{a['max_abs_difference'][name]:.2e}",
                f"{o['max_abs_difference'][name]:.2e}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2].rjust(widths[2])}")
    print(f"Wrote {output}/ ({', '.join(report['artifacts'].values())}, {REPORT_FILENAME})")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        report = export_run(
            _WORKDIR.value,
            _OUTPUT.value,
            _GENERATION.value,
            num_images=_NUM_IMAGES.value,
            data_dir=_DATA_DIR.value,
            latency_runs=_LATENCY_RUNS.value,
        )
    except (ExportError, DataError) as error:
        # Bad input is the user's to fix: say what and how, without a traceback.
        sys.exit(f"evosyn-export: error: {error}")
    _print_summary(report, _OUTPUT.value)


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
