"""Deployment export: SavedModel, Keras and TFLite (float32 and dynamic-range int8) files.

Evolution only masks weights, so a masked offspring exported as is runs exactly as fast as its
ancestor. :func:`export_model` therefore exports the *compacted* model (:func:`compact`), in which
dead clusters are physically gone, and checks every artifact against the Keras model it came from
on real images, because a deployment file that silently computes something else is worse than none.

Artifacts written to ``output_dir`` (keys of :data:`ARTIFACTS`):

    saved_model/        tf.saved_model, signature ``serving_default``: float32 ``images``
                        [None, H, W, C] -> {"outputs": ...} (a single-output model) or one
                        entry per model output name (e.g. DetectNet's ``coverage``, ``bbox``),
                        plus whatever the task's post-processing adds (DetectNet: decoded
                        ``boxes``, ``confidence``, ``classes``, ``num_detections``)
    model.keras         the compacted plain Keras model (loads without tf_evosyn)
    model.tflite        float32 TFLite
    model_int8.tflite   dynamic-range quantised TFLite (int8 weights, float activations)

The TFLite files hold the network only (its raw outputs): post-processing such as box decoding
stays in the application (see the task's documentation for how to decode).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.evolvable_base import EvolvableMixin
from tf_evosyn.core.kinds import nearest_rule
from tf_evosyn.export.target import (  # noqa: F401  (their home before the split)
    ExportError,
    read_run_records,
    resolve_target,
)
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.hardware.latency import (  # noqa: F401  (their home before the split)
    INPUT_NAME,
    SIGNATURE_KEY,
    _interpreter,
    savedmodel_latency,
    tflite_latency,
)

ARTIFACTS: dict[str, str] = {
    "saved_model": "saved_model",
    "keras": "model.keras",
    "tflite": "model.tflite",
    "tflite_int8": "model_int8.tflite",
}
_OUTPUT_KEY = "outputs"  # the output of a single-output model; else the model's output names


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
    """The fixed per-example input shape: (H, W, C) images, or (steps, features) sequences."""
    if len(model.inputs) != 1:
        raise ValueError(f"{model.name}: export supports single-input models only.")
    shape = tuple(model.inputs[0].shape[1:])
    if not shape or any(d is None for d in shape):
        raise ValueError(
            f"{model.name}: expected a fixed input shape such as (H, W, C), got {shape}; "
            "rebuild the model with keras.Input(shape=...) fixed (export.with_input_shape)."
        )
    return tuple(int(d) for d in shape)


def output_names(model: keras.Model) -> list[str]:
    """Keys of the exported outputs: ``["outputs"]`` for one output, else the model's names."""
    return [_OUTPUT_KEY] if len(model.outputs) == 1 else list(model.output_names)


def _named_outputs(model: keras.Model, images) -> dict:
    outputs = model(images, training=False)
    if isinstance(outputs, dict):
        return outputs
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    return dict(zip(output_names(model), outputs, strict=True))


def _model_outputs(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> dict:
    """Every output of ``model`` on ``images``, keyed as the exported signature keys them."""
    chunks = [
        {k: np.asarray(v) for k, v in _named_outputs(model, images[i : i + batch_size]).items()}
        for i in range(0, len(images), batch_size)
    ]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _predict(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The single output of a one-output model (classification logits)."""
    return _model_outputs(model, images, batch_size)[_OUTPUT_KEY]


def with_input_shape(model: keras.Model, input_shape: tuple[int, int, int]) -> keras.Model:
    """The same fully convolutional network at another input size, weights shared by copy.

    Lets a detector trained and exported at a small size be timed at the paper's size.
    """
    clone = keras.models.clone_model(model, input_tensors=keras.Input(tuple(input_shape)))
    clone.set_weights(model.get_weights())
    return clone


# -- writing artifacts ----------------------------------------------------------------------------
_Postprocess = Callable[[dict], dict]


def save_serving_model(
    model: keras.Model,
    path: str | Path,
    postprocess: _Postprocess | None = None,
    batch_size: int | None = None,
) -> Path:
    """A tf.saved_model whose ``serving_default`` takes float32 images [None, H, W, C].

    It returns the model's outputs (see :func:`output_names`) and, with ``postprocess``
    (TF ops from the outputs dict to a dict of more tensors, e.g. decoded boxes), those too.
    Only the variables and one traced function are saved (not Keras' own SavedModel
    metadata), so the directory is what TF Serving / the TFLite converter need and no more.
    ``batch_size``: a fixed batch (None: any), which TFLite needs to fuse recurrent layers.
    """
    path = Path(path)
    shape = _input_shape(model)
    module = tf.Module()
    module.model_variables = list(model.variables)  # tracked, so the function's captures save

    spec = tf.TensorSpec([batch_size, *shape], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images):
        outputs = dict(_named_outputs(model, images))
        if postprocess is not None:
            outputs.update(postprocess(outputs))
        return outputs

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


def write_tflite_pair(model: keras.Model, tflite: Path, tflite_int8: Path) -> None:
    """Float and int8 TFLite files of ``model``'s raw outputs (no post-processing)."""
    # TFLite fuses a Keras LSTM/GRU into its sequence op only at a static batch size (with a
    # dynamic one the conversion fails on TensorList ops): recurrent models take one example.
    # (The layer rules say which: LayerRule.static_batch_export.)
    recurrent = any(
        (rule := nearest_rule(layer)) is not None and rule.static_batch_export
        for layer in model.layers
    )
    with tempfile.TemporaryDirectory(prefix="evosyn_tflite_") as tmp:
        save_serving_model(model, Path(tmp) / "saved_model", batch_size=1 if recurrent else None)
        convert_to_tflite(Path(tmp) / "saved_model", tflite)
        convert_to_tflite(Path(tmp) / "saved_model", tflite_int8, quantize=True)


def _artifact_bytes(path: str | Path) -> int:
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
    postprocess: _Postprocess | None = None,
    preprocess_images: bool = True,
) -> dict:
    """Write the four deployment artifacts of ``compact(model)`` and check them on real images.

    Args:
      model: an evolvable (masked) or plain Keras model with one image input.
      output_dir: created if needed; receives the files named in :data:`ARTIFACTS`.
      sample_images: real images (uint8 or float, (N, H, W[, C])) to verify every artifact.
      compact_model: False exports :func:`plain_copy` instead (same shapes, masks folded), e.g.
        to measure what compaction buys.
      postprocess: extra outputs of the SavedModel's signature computed from the model's
        outputs in TF (e.g. a detector's decoded boxes); TFLite files stay raw.
      preprocess_images: scale uint8 images to [0, 1] as the classification pipeline does
        (False: feed them as they are, e.g. DetectNet's raw 0-255 pixels).

    Returns a dict: ``artifacts`` (name -> path), ``file_bytes`` (name -> bytes), ``parameters``
    and ``macs`` of the input and exported models, and ``max_abs_difference`` (name -> largest
    absolute output difference of the artifact vs ``model`` on ``sample_images``).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    images = prepare_images(sample_images) if preprocess_images else np.asarray(sample_images)
    images = images.astype(np.float32, copy=False)
    exported = compact(model) if compact_model else plain_copy(model)
    paths = {name: output_dir / filename for name, filename in ARTIFACTS.items()}

    save_serving_model(exported, paths["saved_model"], postprocess)
    exported.save(paths["keras"])
    write_tflite_pair(exported, paths["tflite"], paths["tflite_int8"])

    source_flops, exported_flops = count_flops(model), count_flops(exported)
    return {
        "artifacts": {name: str(p) for name, p in paths.items()},
        "file_bytes": {name: _artifact_bytes(p) for name, p in paths.items()},
        "input_shape": list(_input_shape(exported)),
        "compacted": compact_model,
        "parameters": {"model": source_flops.total_params, "exported": exported_flops.total_params},
        "macs": {
            "model_dense": source_flops.total_dense_macs,
            "model_living": source_flops.total_living_macs,
            "exported": exported_flops.total_dense_macs,
        },
        "max_abs_difference": max_abs_difference(model, output_dir, images, preprocess=False),
    }


# -- running artifacts ----------------------------------------------------------------------------
def tflite_outputs(tflite_path: str | Path, images: np.ndarray, threads: int = 1) -> dict:
    """Every output of a TFLite model's signature on a batch of float32 NHWC images."""
    interpreter = _interpreter(tflite_path, threads)
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    images = np.ascontiguousarray(images, np.float32)
    if runner.get_input_details()[INPUT_NAME]["shape_signature"][0] == 1:  # a fixed batch of 1
        results = []
        for i in range(len(images)):
            if i:  # a fused LSTM's state outlives an invoke (allocated by the first)
                interpreter.reset_all_variables()
            results.append(
                {
                    k: np.asarray(v).copy()
                    for k, v in runner(**{INPUT_NAME: images[i : i + 1]}).items()
                }
            )
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}
    result = runner(**{INPUT_NAME: images})
    return {k: np.asarray(v).copy() for k, v in result.items()}


def _savedmodel_outputs(saved_model_dir: str | Path, images: np.ndarray) -> dict:
    """Every output of the ``serving_default`` signature of an exported SavedModel."""
    serve = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE_KEY]
    result = serve(**{INPUT_NAME: tf.constant(images, tf.float32)})
    return {k: v.numpy() for k, v in result.items()}


def run_tflite(tflite_path: str | Path, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """The output of a single-output TFLite model on a batch of float32 NHWC images."""
    return tflite_outputs(tflite_path, images, threads)[_OUTPUT_KEY]


def _run_savedmodel(saved_model_dir: str | Path, images: np.ndarray) -> np.ndarray:
    """The output of a single-output exported SavedModel."""
    return _savedmodel_outputs(saved_model_dir, images)[_OUTPUT_KEY]


def max_abs_difference(
    model: keras.Model, output_dir: str | Path, images: np.ndarray, preprocess: bool = True
) -> dict[str, float]:
    """Largest |artifact output - ``model`` output| of every artifact in ``output_dir``, over
    all the model's outputs (post-processed extras of the SavedModel are not compared).

    ``model`` is the reference (typically the masked model that was exported); the check covers
    compaction and conversion together.
    """
    output_dir = Path(output_dir)
    images = prepare_images(images) if preprocess else np.asarray(images, np.float32)
    reference = _model_outputs(model, images)
    outputs = {
        "saved_model": _savedmodel_outputs(output_dir / ARTIFACTS["saved_model"], images),
        "keras": _model_outputs(keras.models.load_model(output_dir / ARTIFACTS["keras"]), images),
        "tflite": tflite_outputs(output_dir / ARTIFACTS["tflite"], images),
        "tflite_int8": tflite_outputs(output_dir / ARTIFACTS["tflite_int8"], images),
    }
    return {
        name: max(
            float(np.max(np.abs(out[key].astype(np.float64) - reference[key]))) for key in reference
        )
        for name, out in outputs.items()
    }
