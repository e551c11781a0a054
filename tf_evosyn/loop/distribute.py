"""Scale: ``tf.distribute`` strategies, mixed precision and XLA for evolution runs.

Evolution runs unchanged under any strategy as long as every model is *created* inside
``strategy.scope()``: the ancestor (built or loaded), every offspring (synthesis clones the parent)
and every resumed checkpoint. Then all of a layer's variables are mirrored, including the
non-trainable ``synapse_mask``/``cluster_mask``/``*_heredity`` buffers of evolvable layers.
Synthesis itself is host-side NumPy in cross-replica context: ``variable.numpy()`` of a mirrored
variable reads its (identical) primary copy and ``variable.assign(array)`` writes every replica,
so masks drawn once on the host are the same on all devices. Training keeps them in sync: they
are non-trainable and never written by a step.

Batch size: ``model.fit`` splits each batch of the dataset across the replicas, so
``config.train.batch_size`` is the *global* batch; each replica sees ``batch_size / replicas``
(the config check asks for a multiple of the replica count).

Mixed precision (``mixed_float16`` / ``mixed_bfloat16``): variables (weights, masks, heredity
buffers) stay float32, layers compute in the low precision (Keras casts the variables inside
``call``; the 0/1 masks are exact in any float format). The layers that produce the model's
outputs compute in float32 (:func:`with_precision`), so the from-logits loss and the argmax of
evaluation see float32 logits, as the Keras mixed-precision guide recommends. With
``mixed_float16`` Keras wraps the optimizer in a ``LossScaleOptimizer`` by itself.

XLA: ``jit_compile=True`` is passed to ``model.compile`` (train, evaluate and predict steps).
TensorFlow cannot run it with several replicas on logical CPU devices (:func:`check_jit_compile`);
it does on one device, on GPUs and on TPUs.

Multi-worker: every worker runs the whole loop (training steps are collective); the chief writes
the run directory, any other worker a private temporary copy that it deletes at the end and
never writes into the run directory (see :func:`is_chief`). Resume by restarting all workers
together with the same command.
"""

from __future__ import annotations

import contextlib
import json
import os

from absl import logging

from tf_evosyn._keras import keras, tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

__all__ = [
    "PRECISIONS",
    "STRATEGIES",
    "StrategyError",
    "check_jit_compile",
    "check_precision",
    "check_strategy_args",
    "describe",
    "is_chief",
    "is_default",
    "make_strategy",
    "naming_lost_workers",
    "WorkerLostError",
    "set_precision",
    "strategy_name",
    "with_precision",
]


class StrategyError(ValueError):
    """A strategy or precision that cannot be set up; the message says how to fix it."""


def _split_cpu(num_devices: int) -> None:
    """Split the (first) physical CPU into ``num_devices`` logical devices.

    Must run before TensorFlow initialises its devices (before the first op or tensor).
    Calling it again with the same count is a no-op.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as error:
        have = len(tf.config.list_logical_devices("CPU"))
        raise StrategyError(
            f"cannot split the CPU into {num_devices} logical devices: TensorFlow already "
            f"initialised its devices ({have} logical CPU device(s)). Create the strategy before "
            "any TensorFlow op runs (first thing in the program; the binary does), or run in a "
            f"fresh process. ({error})"
        ) from error


def check_strategy_args(name: str, tpu_address: str = "", num_cpu_devices: int = 0) -> None:
    """The cheap checks of :func:`make_strategy`'s arguments, without touching any device."""
    if name not in STRATEGIES:
        raise StrategyError(
            f"unknown strategy {name!r}; use one of {list(STRATEGIES)} "
            "(--strategy=... or --config.distribute.strategy=...)."
        )
    if not isinstance(tpu_address, str):
        raise StrategyError(f"tpu_address must be a string, got {tpu_address!r}.")
    if isinstance(num_cpu_devices, bool) or not isinstance(num_cpu_devices, int):
        raise StrategyError(f"num_cpu_devices must be an int, got {num_cpu_devices!r}.")
    if num_cpu_devices < 0:
        raise StrategyError(f"num_cpu_devices must be >= 0 (0 = no split), got {num_cpu_devices}.")
    if num_cpu_devices > 1 and name != "mirrored":
        raise StrategyError(
            f"num_cpu_devices={num_cpu_devices} only applies to the 'mirrored' strategy, not "
            f"{name!r}; set distribute.num_cpu_devices=0 or use --strategy=mirrored."
        )
    if tpu_address and name != "tpu":
        raise StrategyError(
            f"tpu_address={tpu_address!r} only applies to the 'tpu' strategy, not {name!r}; "
            "clear distribute.tpu_address or use --strategy=tpu."
        )


def check_precision(policy: str) -> None:
    if policy not in PRECISIONS:
        raise StrategyError(
            f"unknown precision {policy!r}; use one of {list(PRECISIONS)} "
            "(--config.train.mixed_precision=...)."
        )


def make_strategy(
    name: str,
    tpu_address: str = "",
    num_cpu_devices: int = 0,
    collective_timeout_seconds: float | None = None,
) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of :data:`STRATEGIES`).

    Args:
      name: ``default`` (no distribution: ``tf.distribute.get_strategy()``), ``mirrored``
        (synchronous data parallelism over the local GPUs, or over ``num_cpu_devices`` logical
        CPU devices when there is no GPU), ``multi_worker_mirrored`` (synchronous over the
        workers that ``TF_CONFIG`` describes; a single local worker without it) or ``tpu``.
      tpu_address: for ``tpu``: the TPU name or ``grpc://host:port`` address, ``local`` for a
        TPU VM.
      num_cpu_devices: for ``mirrored`` without a GPU: split the CPU into this many logical
        devices (> 1) and mirror over them, e.g. to test multi-replica code on a laptop. This
        must happen before TensorFlow initialises its devices: call ``make_strategy`` first.
    """
    check_strategy_args(name, tpu_address, num_cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            if num_cpu_devices > 1:
                logging.info("GPUs found: mirroring over them; num_cpu_devices is ignored.")
            return tf.distribute.MirroredStrategy()
        if num_cpu_devices > 1:
            _split_cpu(num_cpu_devices)
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
            return tf.distribute.MirroredStrategy(devices=devices[:num_cpu_devices])
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        raw = os.environ.get("TF_CONFIG", "")
        if raw:
            try:
                json.loads(raw)
            except json.JSONDecodeError as error:
                raise StrategyError(
                    f"TF_CONFIG is not valid JSON ({error}); it must describe the cluster, e.g. "
                    '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                    '"task": {"type": "worker", "index": 0}}.'
                ) from error
        # A crashed worker is found by the coordination service's heartbeats (its peers fail
        # within tens of seconds); the timeout bounds a collective that a live but stuck
        # worker never joins.
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout_seconds
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    # tpu
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        where = f"at {tpu_address!r}" if tpu_address else "(no address given)"
        raise StrategyError(
            f"no TPU reachable {where}: {str(error).splitlines()[0]} Set "
            "--config.distribute.tpu_address to the TPU name or grpc://host:port address "
            "('local' on a TPU VM)."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run died or stopped answering; one line with what to do."""


# What a collective raises when a peer is gone (heartbeats stopped) or did not join in time.
_PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


@contextlib.contextmanager
def naming_lost_workers(strategy: tf.distribute.Strategy, workdir):
    """Turn a lost peer of a multi-worker run into :class:`WorkerLostError` naming the restart:
    every worker again with the same command, which resumes after the last committed
    generation (the non-chief's private copy is rebuilt from the run directory)."""
    try:
        yield
    except _PEER_ERRORS as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        lines = [line for line in str(error).splitlines() if line.strip()]
        cause = " ".join(lines[:2])[:300]
        raise WorkerLostError(
            f"a worker of the multi-worker run stopped ({type(error).__name__}: {cause}); "
            f"restart every worker with the same command: the run in {workdir} resumes after "
            "its last committed generation."
        ) from error


def is_default(strategy: tf.distribute.Strategy) -> bool:
    """True for TensorFlow's default (no distribution) strategy."""
    return type(strategy).__name__ == "_DefaultDistributionStrategy"


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """A short name of a strategy object, for the run's metadata."""
    if is_default(strategy):
        return "default"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker_mirrored"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return type(strategy).__name__


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def describe(strategy: tf.distribute.Strategy) -> dict:
    """JSON-ready facts about a strategy: name, replica count and devices."""
    try:
        devices = list(strategy.extended.worker_devices)
    except (RuntimeError, NotImplementedError):  # the default strategy has no device list
        devices = []
    return {
        "strategy": strategy_name(strategy),
        "num_replicas": int(strategy.num_replicas_in_sync),
        "devices": [str(device) for device in devices],
    }


def check_jit_compile(strategy: tf.distribute.Strategy, jit_compile: bool) -> None:
    """XLA with several replicas on logical CPU devices does not run: TensorFlow places every
    replica's compiled step on CPU:0, which cannot read the other replicas' variables."""
    if not jit_compile or strategy.num_replicas_in_sync < 2:
        return
    devices = describe(strategy)["devices"]
    if devices and all(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in devices):
        raise StrategyError(
            f"jit_compile=True cannot run with {len(devices)} replicas on logical CPU devices "
            "(TensorFlow's XLA runs every replica's step on CPU:0); set "
            "--config.train.jit_compile=False, or use XLA with GPUs, a TPU or one CPU device."
        )


def set_precision(policy: str) -> None:
    """Set Keras' global dtype policy: ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.

    Affects the layers created afterwards (so call it before building or loading models).
    """
    check_precision(policy)
    keras.mixed_precision.set_global_policy(policy)


def _output_layer_names(model: keras.Model) -> set[str]:
    return {tensor._keras_history.layer.name for tensor in model.outputs}


def _target_policy(layer, policy: str, outputs: set[str]) -> str | None:
    """The dtype policy ``layer`` should have, or None to leave it as it is."""
    if isinstance(layer, keras.layers.InputLayer):
        return None
    current = layer.dtype_policy
    if not tf.as_dtype(current.variable_dtype or "float32").is_floating:
        return None
    return "float32" if layer.name in outputs else policy


def with_precision(model: keras.Model, policy: str | None = None) -> keras.Model:
    """``model`` with every layer computing in ``policy`` (default: the global policy) and the
    layers that produce its outputs in float32 (float32 logits for the loss and the argmax).

    Returns ``model`` itself when every layer already has its target policy (always the case
    for a model built under ``float32``), else a clone with the same weights and masks (call it
    inside the strategy scope). Works for Sequential and Functional models.
    """
    policy = policy or keras.mixed_precision.global_policy().name
    check_precision(policy)
    outputs = _output_layer_names(model)
    targets = {layer.name: _target_policy(layer, policy, outputs) for layer in model.layers}
    if all(
        target is None or layer.dtype_policy.name == target
        for layer, target in zip(model.layers, targets.values(), strict=True)
    ):
        return model

    def clone_layer(layer):
        config = layer.get_config()
        if targets.get(layer.name) is not None:
            config["dtype"] = targets[layer.name]
        return type(layer).from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone
