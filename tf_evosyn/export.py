"""Deployment export: SavedModel, Keras and TFLite (float32 and dynamic-range int8) files.

Evolution only masks weights, so a masked offspring exported as is runs exactly as fast as its
ancestor. :func:`export_model` therefore exports the *compacted* model (:func:`compact`), in which
dead clusters are physically gone, and checks every artifact against the Keras model it came from
on real images, because a deployment file that silently computes something else is worse than none.

Artifacts written to ``output_dir`` (keys of :data:`ARTIFACTS`):

    saved_model/        tf.saved_model, signature ``serving_default``: float32 ``images``
                        [None, H, W, C] -> {"outputs": ...}
    model.keras         the compacted plain Keras model (loads without tf_evosyn)
    model.tflite        float32 TFLite
    model_int8.tflite   dynamic-range quantised TFLite (int8 weights, float activations)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from tf_evosyn import io_utils
from tf_evosyn._keras import keras, tf
from tf_evosyn.compaction import compact
from tf_evosyn.flops import count_flops
from tf_evosyn.layers import EvolvableMixin
from tf_evosyn.lineage import LINEAGE_FILENAME, Lineage

ARTIFACTS: dict[str, str] = {
    "saved_model": "saved_model",
    "keras": "model.keras",
    "tflite": "model.tflite",
    "tflite_int8": "model_int8.tflite",
}
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "images"
OUTPUT_KEY = "outputs"


# -- preparing models and images ------------------------------------------------------------------
def prepare_images(images: np.ndarray) -> np.ndarray:
    """Float32 NHWC images as the training pipeline feeds them (uint8 pixels / 255)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    images = images.astype(np.float32, copy=False)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {images.shape}.")
    return images


def plain_copy(model: keras.Model) -> keras.Model:
    """The same architecture with plain Conv2D/Dense layers and masks folded into the weights.

    Same shapes as ``model`` (nothing removed): what exporting the masked model without
    compaction gives. Dead synapses become zeros in the kernel.
    """

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, EvolvableMixin):
            return layer.plain_type.from_config(layer.plain_config())
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone_layer)
    for source in model.layers:
        if not source.weights:
            continue
        target = copy.get_layer(source.name)
        if isinstance(source, EvolvableMixin):
            target.set_weights(source.plain_weights())
        else:
            target.set_weights(source.get_weights())
    return copy


def _input_shape(model: keras.Model) -> tuple[int, ...]:
    if len(model.inputs) != 1:
        raise ValueError(f"{model.name}: export supports single-input image models only.")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(f"{model.name}: expected a fixed (H, W, C) input shape, got {shape}.")
    return tuple(int(d) for d in shape)


def _predict(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    outputs = [
        model(images[i : i + batch_size], training=False).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs)


# -- writing artifacts ----------------------------------------------------------------------------
def save_serving_model(model: keras.Model, path: str | Path) -> Path:
    """A tf.saved_model whose ``serving_default`` takes float32 images [None, H, W, C].

    Only the variables and one traced function are saved (not Keras' own SavedModel metadata),
    so the directory is what TF Serving / the TFLite converter need and nothing more.
    """
    path = Path(path)
    shape = _input_shape(model)
    module = tf.Module()
    module.model_variables = list(model.variables)  # tracked, so the function's captures save

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32, name=INPUT_NAME)])
    def serve(images):
        return {OUTPUT_KEY: model(images, training=False)}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={SIGNATURE_KEY: serve})
    return path


def convert_to_tflite(
    saved_model_dir: str | Path, path: str | Path, quantize: bool = False
) -> Path:
    """Convert a SavedModel to TFLite; ``quantize``: dynamic-range int8 weights (no calibration)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=[SIGNATURE_KEY]
    )
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = Path(path)
    path.write_bytes(converter.convert())
    return path


def artifact_bytes(path: str | Path) -> int:
    """Size on disk of a file, or of every file under a directory (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def export_model(
    model: keras.Model,
    output_dir: str | Path,
    sample_images: np.ndarray,
    *,
    compact_model: bool = True,
) -> dict:
    """Write the four deployment artifacts of ``compact(model)`` and check them on real images.

    Args:
      model: an evolvable (masked) or plain Keras model with one image input.
      output_dir: created if needed; receives the files named in :data:`ARTIFACTS`.
      sample_images: real images (uint8 or float, (N, H, W[, C])) to verify every artifact.
      compact_model: False exports :func:`plain_copy` instead (same shapes, masks folded), e.g.
        to measure what compaction buys.

    Returns a dict: ``artifacts`` (name -> path), ``file_bytes`` (name -> bytes), ``parameters``
    and ``macs`` of the input and exported models, and ``max_abs_difference`` (name -> largest
    absolute output difference of the artifact vs ``model`` on ``sample_images``).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    images = prepare_images(sample_images)
    exported = compact(model) if compact_model else plain_copy(model)
    paths = {name: output_dir / filename for name, filename in ARTIFACTS.items()}

    save_serving_model(exported, paths["saved_model"])
    exported.save(paths["keras"])
    convert_to_tflite(paths["saved_model"], paths["tflite"])
    convert_to_tflite(paths["saved_model"], paths["tflite_int8"], quantize=True)

    source_flops, exported_flops = count_flops(model), count_flops(exported)
    return {
        "artifacts": {name: str(p) for name, p in paths.items()},
        "file_bytes": {name: artifact_bytes(p) for name, p in paths.items()},
        "input_shape": list(_input_shape(exported)),
        "compacted": compact_model,
        "parameters": {"model": source_flops.total_params, "exported": exported_flops.total_params},
        "macs": {
            "model_dense": source_flops.total_dense_macs,
            "model_living": source_flops.total_living_macs,
            "exported": exported_flops.total_dense_macs,
        },
        "max_abs_difference": max_abs_difference(model, output_dir, images),
    }


# -- run directories ------------------------------------------------------------------------------
_FIX = "pass the directory an evosyn-classify run wrote (its --workdir)"


class ExportError(ValueError):
    """The run directory or the requested generation cannot be exported (user's to fix)."""


def _checkpoint(workdir: Path, generation: int) -> Path:
    path = workdir / "generations" / f"gen_{generation:04d}" / "model.keras"
    if not path.is_file():
        raise ExportError(
            f"{path} is missing: the checkpoint of generation {generation} was deleted or never "
            "written. Restore it, or export another generation with --generation=N."
        )
    return path


def read_run_records(
    workdir: Path,
    *,
    described_as: str = "",
    fix: str = _FIX,
    error: type[Exception] = ExportError,
) -> list[dict]:
    """The lineage records of a run directory, or ``error`` saying what is wrong and ``fix``.

    ``described_as`` names the directory in messages (default: "run directory WORKDIR").
    """
    described_as = described_as or f"run directory {workdir}"
    if not workdir.is_dir():
        raise error(f"{described_as} does not exist; {fix}.")
    if not (workdir / LINEAGE_FILENAME).is_file():
        raise error(
            f"{workdir} has no {LINEAGE_FILENAME}: it is not an evolution run directory, or its "
            f"ancestor (generation 0) has not finished yet; {fix}."
        )
    try:
        return Lineage(workdir).records
    except ValueError as exc:
        raise error(str(exc)) from exc


def resolve_target(workdir: str | Path, generation: int | None = None) -> dict:
    """Check the run directory and pick what to export, before any expensive work.

    Returns {"ancestor": record, "offspring": record, "ancestor_path", "offspring_path",
    "config"}. Raises :class:`ExportError` with a message that says how to fix the problem.
    """
    workdir = Path(workdir)
    records = read_run_records(workdir)
    if not records:
        raise ExportError(
            f"{workdir} has no finished generation yet; let evosyn-classify finish at least "
            "the ancestor (generation 0), then export."
        )
    by_generation = {r["generation"]: r for r in records}
    accepted = [r["generation"] for r in records if r["accepted"]]
    if generation is None:
        best = workdir / "best" / "record.json"
        if not best.is_file():
            raise ExportError(
                f"{best} is missing; resume the run with evosyn-classify to rewrite best/, or "
                f"choose one with --generation=N (accepted: {accepted})."
            )
        generation = int(io_utils.read_json(best)["generation"])
    if generation not in by_generation:
        raise ExportError(
            f"generation {generation} not found in {workdir / LINEAGE_FILENAME} (it has "
            f"generations 0..{records[-1]['generation']}); use --generation with one of {accepted}."
        )
    if not by_generation[generation]["accepted"]:
        raise ExportError(
            f"generation {generation} was rejected (it did not meet the accuracy floor); "
            f"export an accepted one with --generation=N, N in {accepted}."
        )
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise ExportError(
            f"{config_path} is missing: the run's data config is needed for the real test "
            "images that verify the export. Restore it from the run's original config."
        )
    config = io_utils.read_json(config_path)
    if "data" not in config:
        raise ExportError(f"{config_path} has no 'data' section; restore the run's config.")
    return {
        "ancestor": by_generation[0],
        "offspring": by_generation[generation],
        "ancestor_path": _checkpoint(workdir, 0),
        "offspring_path": _checkpoint(workdir, generation),
        "config": config,
    }


# -- running artifacts ----------------------------------------------------------------------------
def _interpreter(tflite_path: str | Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(tflite_path), num_threads=threads)


def run_tflite(tflite_path: str | Path, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """Outputs of a TFLite model on a batch of float32 NHWC images (one invoke)."""
    interpreter = _interpreter(tflite_path, threads)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(images.shape), strict=False)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images.astype(np.float32, copy=False))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def run_savedmodel(saved_model_dir: str | Path, images: np.ndarray) -> np.ndarray:
    """Outputs of the ``serving_default`` signature of an exported SavedModel."""
    serve = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE_KEY]
    return serve(**{INPUT_NAME: tf.constant(images, tf.float32)})[OUTPUT_KEY].numpy()


def max_abs_difference(
    model: keras.Model, output_dir: str | Path, images: np.ndarray
) -> dict[str, float]:
    """Largest |artifact output - ``model`` output| of every artifact in ``output_dir``.

    ``model`` is the reference (typically the masked model that was exported); the check covers
    compaction and conversion together.
    """
    output_dir = Path(output_dir)
    images = prepare_images(images)
    reference = _predict(model, images)
    outputs = {
        "saved_model": run_savedmodel(output_dir / ARTIFACTS["saved_model"], images),
        "keras": _predict(keras.models.load_model(output_dir / ARTIFACTS["keras"]), images),
        "tflite": run_tflite(output_dir / ARTIFACTS["tflite"], images),
        "tflite_int8": run_tflite(output_dir / ARTIFACTS["tflite_int8"], images),
    }
    return {
        name: float(np.max(np.abs(out.astype(np.float64) - reference)))
        for name, out in outputs.items()
    }


# -- latency --------------------------------------------------------------------------------------
def _summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {
        "median_ms": float(statistics.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "runs": len(ms),
    }


def tflite_latency(
    tflite_path: str | Path,
    input_shape: tuple[int, ...],
    threads: int = 1,
    runs: int = 200,
    warmup: int = 20,
) -> dict:
    """Per-invoke latency of a TFLite model (XNNPACK, the default delegate), input filled once.

    ``input_shape`` includes the batch axis, e.g. (1, 28, 28, 1). Returns median_ms, p90_ms, runs.
    """
    interpreter = _interpreter(tflite_path, threads)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(input_shape), strict=False)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    interpreter.set_tensor(inp["index"], rng.random(input_shape, dtype=np.float32))
    for _ in range(warmup):
        interpreter.invoke()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        seconds.append(time.perf_counter() - start)
    return _summary(seconds)


def savedmodel_latency(
    saved_model_dir: str | Path,
    input_shape: tuple[int, ...],
    runs: int = 200,
    warmup: int = 20,
) -> dict:
    """Per-call latency of the ``serving_default`` signature (eager call, result materialised).

    TF's thread pools are process-wide: set ``tf.config.threading`` before TF initialises to
    control them. Returns median_ms, p90_ms, runs.
    """
    serve = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE_KEY]
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random(input_shape, dtype=np.float32))
    for _ in range(warmup):
        serve(**{INPUT_NAME: images})[OUTPUT_KEY].numpy()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        serve(**{INPUT_NAME: images})[OUTPUT_KEY].numpy()
        seconds.append(time.perf_counter() - start)
    return _summary(seconds)
