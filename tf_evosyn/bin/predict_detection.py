"""Run a detector on images: ``evosyn-predict --model=RUN --images=DIR --output_dir=OUT``.

``--model`` is a run directory of ``evosyn-detect`` (its ``best/`` model, decoded with the
run's ``config.json``: classes, decoder, thresholds), an ``evosyn-export`` output directory
(its ``model.keras`` or ``saved_model/``; decoded with its run's config when that is still
there), a ``.keras`` file or a SavedModel directory (default decoding: DetectNet's clustering,
class ``Car``). ``--images`` is a folder (its ``*.png``/``*.jpg``/``*.jpeg``) or a glob.

For every image ``ID.ext`` it writes ``OUT/ID.txt``, a KITTI result file the official devkit
reads (boxes in the image's own pixels), and ``OUT/ID.png``, the image with its boxes drawn.
Images of any size: those that fit the network input are padded, larger ones scaled down
(:func:`tf_evosyn.detection.predict`). Bad input (a missing, non-image, grey or RGBA file, a
wrong ``--model``) stops with one line naming the file and the fix, before any model work.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags

import tf_evosyn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tf_evosyn.core.model_io import KERAS_FILENAME
from tf_evosyn.data import DataError
from tf_evosyn.detection.inference import IMAGE_SUFFIXES, inspect_image_file, load_image, predict
from tf_evosyn.detection.kitti_results import draw_detections, write_kitti_results
from tf_evosyn.loop.lineage import LINEAGE_FILENAME
from tf_evosyn.runs.config_checks import ConfigError
from tf_evosyn.storage import fs, io_utils

_MODEL = flags.DEFINE_string(
    "model",
    None,
    "A run directory (evosyn-detect --workdir), an evosyn-export output, a .keras file or a "
    "SavedModel directory.",
)
_IMAGES = flags.DEFINE_string(
    "images", None, "A folder of PNG/JPEG images, or a glob such as 'data/*.png'."
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Receives ID.txt (KITTI) and ID.png files.")
_THRESHOLD = flags.DEFINE_float(
    "threshold", None, "Coverage threshold in (0, 1); default: the run's (DetectNet: 0.6)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Images per model call (memory only).")
flags.mark_flags_as_required(["model", "images", "output_dir"])

_PROG = "evosyn-predict"
REPORT_FILENAME = "export_report.json"
_MODEL_HINT = (
    "give a run directory (evosyn-detect --workdir), an evosyn-export --output directory, a "
    ".keras file or a SavedModel directory"
)


class PredictError(ValueError):
    """A flag of evosyn-predict names something it cannot use (the user's to fix)."""


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where the model is and the run config that says how to decode it (None: defaults)."""

    path: fs.RunPath
    config: dict | None
    described_as: str


def _list_images(spec: str) -> list[str]:
    """The image files of a folder (PNG/JPEG, sorted) or of a glob, checked by their headers."""
    if fs.isdir(spec):
        names = sorted(n for n in fs.listdir(spec) if n.lower().endswith(IMAGE_SUFFIXES))
        paths = [str(fs.join(spec, n)) for n in names]
        where = f"folder {spec} has no .png/.jpg/.jpeg files"
    else:
        from tf_evosyn._keras import tf

        found = (
            tf.io.gfile.glob(spec) if fs.is_remote(spec) else glob.glob(os.path.expanduser(spec))
        )
        paths = sorted(p for p in found if not fs.isdir(p))
        where = f"{spec} matches no file (a folder or a glob such as 'images/*.png')"
    if not paths:
        raise PredictError(f"--images={spec}: {where}.")
    by_id: dict[str, str] = {}
    for path in paths:
        inspect_image_file(path)  # missing, not an image, grey, RGBA: one line naming it
        image_id = _image_id_of(path)
        if image_id in by_id:
            raise PredictError(
                f"--images={spec}: {by_id[image_id]} and {path} share the ID {image_id!r}, so "
                "their outputs would overwrite each other; predict them into separate "
                "--output_dir folders."
            )
        by_id[image_id] = path
    return paths


def _image_id_of(path: str) -> str:
    """``.../000123.png`` -> ``000123`` (the KITTI result file's name)."""
    return os.path.splitext(fs.basename(path))[0]


def _run_config(*workdirs: fs.RunPath) -> dict | None:
    """The first ``config.json`` of a detection run among ``workdirs`` (None if none)."""
    for workdir in workdirs:
        path = fs.join(workdir, "config.json")
        if fs.isfile(path):
            try:
                config = io_utils.read_json(path)
            except ValueError as error:  # names the file and the fix
                raise PredictError(str(error)) from None
            if "detection" in config and "data" in config:
                return config
    return None


def _resolve_model(spec: str) -> ModelSource:
    """Find the model file a ``--model`` names and its run's config (cheap: no model loads)."""
    root = fs.path(spec)
    if not fs.exists(root):
        raise PredictError(f"--model={spec} does not exist; {_MODEL_HINT}.")
    if fs.isfile(root):
        if not str(root).endswith(".keras"):
            raise PredictError(f"--model={spec} is a file but not a .keras model; {_MODEL_HINT}.")
        return ModelSource(root, _run_config(fs.parent(root), fs.parent(fs.parent(root))), spec)
    if fs.isfile(fs.join(root, LINEAGE_FILENAME)):  # a run directory: its best offspring
        best = fs.join(root, "best")
        if not (io_utils.is_committed_dir(best) and fs.isfile(fs.join(best, KERAS_FILENAME))):
            raise PredictError(
                f"--model={spec} is a run directory without a finished best/{KERAS_FILENAME}; "
                "resume the run (evosyn-detect) to write it, or pass a generation's folder, "
                f"e.g. --model={fs.join(root, 'generations', 'gen_0000')}."
            )
        config = _run_config(root)
        if config is None:
            raise PredictError(
                f"{fs.join(root, 'config.json')} is missing or not a detection config; it "
                "says how to decode the model: restore it from the run's original config."
            )
        return ModelSource(fs.join(best, KERAS_FILENAME), config, f"{spec} (best/)")
    report = fs.join(root, REPORT_FILENAME)
    workdirs = [fs.parent(root), fs.parent(fs.parent(root))]  # best/ or generations/gen_N/
    if fs.isfile(report):  # an evosyn-export output: decode as its run did, if it still exists
        workdirs = [io_utils.read_json(report).get("workdir", ""), *workdirs]
    config = _run_config(*[w for w in workdirs if w])
    if fs.isfile(fs.join(root, KERAS_FILENAME)):
        return ModelSource(fs.join(root, KERAS_FILENAME), config, spec)
    for saved_model in (root, fs.join(root, "saved_model")):
        if fs.isfile(fs.join(saved_model, "saved_model.pb")):
            return ModelSource(saved_model, config, spec)
    raise PredictError(
        f"--model={spec} holds neither {KERAS_FILENAME}, saved_model.pb nor {LINEAGE_FILENAME}; "
        f"{_MODEL_HINT}."
    )


def _detection_task_for(source: ModelSource, threshold: float | None = None):
    """The task that decodes the model: its run's config, else DetectNet's defaults for Car."""
    from tf_evosyn.tasks.detection import DetectionTask

    if source.config is not None:
        import ml_collections

        from tf_evosyn.runs.detection import detection_task

        try:
            task = detection_task(ml_collections.ConfigDict(source.config))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise PredictError(
                f"the run config of --model={source.described_as} does not describe a detection "
                f"task ({type(error).__name__}: {error}); restore its config.json."
            ) from None
    else:
        task = DetectionTask(class_names=("Car",))
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
            raise PredictError(f"--threshold={threshold} must be in (0, 1) (DetectNet: 0.6).")
        task.decode = dataclasses.replace(task.decode, threshold=float(threshold))
    return task


def load_detector(source: ModelSource):
    """A Keras model, or the serving signature of an exported SavedModel."""
    from tf_evosyn._keras import tf
    from tf_evosyn.core.model_io import load_model

    if str(source.path).endswith(".keras"):
        return load_model(source.path)
    return tf.saved_model.load(str(source.path)).signatures["serving_default"]


def _predict_images(
    model: str,
    images: str,
    output_dir: str,
    threshold: float | None = None,
    batch_size: int = 4,
) -> dict:
    """What ``evosyn-predict`` does (see the module doc); returns a summary dict.

    Every input is checked (flags, image headers, model path) before the model is loaded.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PredictError(f"--batch_size={batch_size!r} must be an integer >= 1.")
    if fs.exists(output_dir) and not fs.isdir(output_dir):
        raise PredictError(f"--output_dir={output_dir} is an existing file; give a folder.")
    paths = _list_images(images)
    source = _resolve_model(model)
    task = _detection_task_for(source, threshold)
    detector = load_detector(source)
    fs.makedirs(output_dir)
    total = 0
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        pixels = [load_image(path) for path in chunk]
        found = predict(detector, pixels, task, batch_size=batch_size)
        for path, image, detections in zip(chunk, pixels, found, strict=True):
            image_id = _image_id_of(path)
            write_kitti_results(
                fs.join(output_dir, f"{image_id}.txt"), detections, task.class_names
            )
            draw_detections(
                image, detections, task.class_names, fs.join(output_dir, f"{image_id}.png")
            )
            total += len(detections["boxes"])
    return {
        "model": source.described_as,
        "images": len(paths),
        "detections": total,
        "classes": list(task.class_names),
        "threshold": task.decode.threshold,
        "output_dir": str(output_dir),
    }


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        summary = _predict_images(
            _MODEL.value, _IMAGES.value, _OUTPUT_DIR.value, _THRESHOLD.value, _BATCH_SIZE.value
        )
    except (PredictError, DataError, ConfigError) as error:
        # Bad input is the user's to fix: say what and how, without a traceback.
        sys.exit(f"{_PROG}: error: {error}")
    print(
        f"{summary['detections']} detections ({', '.join(summary['classes'])}, threshold "
        f"{summary['threshold']:g}) in {summary['images']} images from {summary['model']}; "
        f"wrote ID.txt (KITTI results) and ID.png per image to {Path(summary['output_dir'])}/"
    )


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
