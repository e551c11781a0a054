"""TF-MOT interoperability: evolved <-> pruned models, and evolution inside one TF-MOT fit."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tf_evosyn
from tf_evosyn._keras import keras, tf
from tf_evosyn.interop.tfmot import (
    KeepMasks,
    PruneLowMagnitude,
    from_tfmot,
    kernel_pruning_vars,
    to_tfmot,
    wrapped_layers,
)
from tf_evosyn.interop.tfmot_schedule import (
    EvolutionaryPruningCallback,
    EvolutionarySchedule,
    prune_with_evolution,
)
from tf_evosyn.models import lenet5

EVOLVED = ("conv1", "conv2", "fc1", "fc2")


def _images(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255.0)[..., None]


@pytest.fixture(scope="module")
def data(mnist_small):
    return {
        "x": _images(mnist_small.train_images),
        "y": mnist_small.train_labels.astype(np.int32),
        "x_test": _images(mnist_small.test_images[:256]),
        "y_test": mnist_small.test_labels[:256].astype(np.int32),
    }


def _compile(model, learning_rate=1e-3):
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="module")
def evolved(data):
    """A trained LeNet-5 ancestor and two generations of offspring: dead synapses and clusters."""
    keras.utils.set_random_seed(0)
    ancestor = _compile(tf_evosyn.evolvable(lenet5()))
    ancestor.fit(data["x"], data["y"], batch_size=32, epochs=1, verbose=0)
    model = ancestor
    for generation in (1, 2):
        model, _ = tf_evosyn.synthesize(
            model, tf_evosyn.ConstantFactor(0.7, 0.9), seed=0, generation=generation
        )
    counts = {layer.name: layer for layer in tf_evosyn.count_living(model).layers}
    assert counts["conv1"].clusters < 20 and counts["fc1"].clusters < 500  # whole clusters died
    assert counts["fc2"].clusters == 10
    return model


def _living(model) -> dict[str, np.ndarray]:
    return {layer.name: layer.living_synapse_mask() for layer in tf_evosyn.evolvable_layers(model)}


def _tfmot_masks(model) -> dict[str, np.ndarray]:
    return {
        name: kernel_pruning_vars(wrapper)[1].numpy() > 0.5
        for name, wrapper in wrapped_layers(model).items()
    }


def _max_diff(a, b, x) -> float:
    return float(np.abs(a.predict(x, verbose=0) - b.predict(x, verbose=0)).max())


def test_to_tfmot_gives_identical_outputs_and_masks(evolved, data, tmp_path):
    pruned = to_tfmot(evolved)
    wrappers = wrapped_layers(pruned)
    assert set(wrappers) == set(EVOLVED)
    for name, wrapper in wrappers.items():
        assert type(wrapper.layer) in (keras.layers.Conv2D, keras.layers.Dense)
        assert isinstance(wrapper.pruning_schedule, KeepMasks)
        source = evolved.get_layer(name)
        np.testing.assert_array_equal(_tfmot_masks(pruned)[name], source.living_synapse_mask())
        np.testing.assert_array_equal(wrapper.layer.kernel.numpy(), source.masked_kernel().numpy())
        dead = ~source.living_cluster_mask()
        assert not wrapper.layer.bias.numpy()[dead].any()
    assert isinstance(pruned.get_layer("pool1"), keras.layers.MaxPooling2D)
    assert _max_diff(evolved, pruned, data["x_test"]) <= 1e-5

    path = tmp_path / "pruned.keras"
    pruned.save(path)
    with tfmot.sparsity.keras.prune_scope():
        loaded = keras.models.load_model(path, compile=False)
    assert isinstance(wrapped_layers(loaded)["fc1"].pruning_schedule, KeepMasks)
    for name, mask in _tfmot_masks(loaded).items():
        np.testing.assert_array_equal(mask, _tfmot_masks(pruned)[name])
    assert _max_diff(evolved, loaded, data["x_test"]) <= 1e-5


def test_fine_tuning_keeps_the_evolved_sparsity_pattern_through_strip(evolved, data):
    pruned = _compile(to_tfmot(evolved), learning_rate=1e-2)
    before = {n: w.layer.kernel.numpy().copy() for n, w in wrapped_layers(pruned).items()}
    pruned.fit(
        data["x"][:256],
        data["y"][:256],
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    wrappers = wrapped_layers(pruned)
    assert int(wrappers["conv1"].pruning_step.numpy()) == 8  # TF-MOT really stepped 8 times
    living = _living(evolved)
    for name, mask in _tfmot_masks(pruned).items():
        np.testing.assert_array_equal(mask, living[name])  # TF-MOT never re-pruned
        kernel = wrappers[name].layer.kernel.numpy()
        assert not np.array_equal(kernel[living[name]], before[name][living[name]])  # trained

    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in stripped.layers)
    assert _max_diff(pruned, stripped, data["x_test"]) <= 1e-5
    for name in EVOLVED:
        kernel = stripped.get_layer(name).kernel.numpy()
        assert np.all(kernel[~living[name]] == 0.0)
        assert np.count_nonzero(kernel[living[name]]) == living[name].sum()

    again = from_tfmot(stripped)  # evolution can go on from the fine-tuned TF-MOT model
    for name, mask in _living(again).items():
        np.testing.assert_array_equal(mask, living[name])


def test_from_tfmot_round_trip(evolved, data):
    pruned = to_tfmot(evolved)
    for source in (pruned, tfmot.sparsity.keras.strip_pruning(to_tfmot(evolved))):
        back = from_tfmot(source)
        assert [type(layer).__name__ for layer in tf_evosyn.evolvable_layers(back)] == [
            "EvoConv2D",
            "EvoConv2D",
            "EvoDense",
            "EvoDense",
        ]
        for name in EVOLVED:
            target, original = back.get_layer(name), evolved.get_layer(name)
            np.testing.assert_array_equal(target.living_synapse_mask(), _living(evolved)[name])
            np.testing.assert_array_equal(
                target.living_cluster_mask(), original.living_cluster_mask()
            )
            np.testing.assert_array_equal(target.kernel.numpy(), original.masked_kernel().numpy())
        assert [back.get_layer(n).evolve_clusters for n in EVOLVED] == [True, True, True, False]
        assert _max_diff(evolved, back, data["x_test"]) <= 1e-5

    offspring, _ = tf_evosyn.synthesize(back, tf_evosyn.ConstantFactor(0.8), seed=0, generation=3)
    for name, mask in _living(offspring).items():
        assert not (mask & ~_living(evolved)[name]).any()


def test_prune_low_magnitude_wraps_evolvable_layers_directly(evolved, data):
    # prune_low_magnitude shares the layers it wraps, so wrap a copy.
    kept = tfmot.sparsity.keras.prune_low_magnitude(
        tf_evosyn.clone_with_weights(evolved), pruning_schedule=KeepMasks()
    )
    assert isinstance(wrapped_layers(kept)["conv2"].layer, tf_evosyn.EvoConv2D)
    assert _max_diff(evolved, kept, data["x_test"]) <= 1e-5

    magnitude = _compile(
        tfmot.sparsity.keras.prune_low_magnitude(
            tf_evosyn.clone_with_weights(evolved),
            pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.97, 0, frequency=1),
        )
    )
    magnitude.fit(
        data["x"][:64],
        data["y"][:64],
        batch_size=32,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    tfmot_masks = _tfmot_masks(magnitude)
    back = from_tfmot(magnitude)
    for name, living in _living(back).items():
        expected = _living(evolved)[name] & tfmot_masks[name]
        np.testing.assert_array_equal(living, expected)
        assert living.sum() < _living(evolved)[name].sum()  # TF-MOT pruned further


def test_schedule_config_round_trip_and_boundaries():
    schedule = EvolutionarySchedule(
        generation_steps=7,
        begin_step=3,
        end_step=40,
        max_generations=4,
        cluster_factor=0.7,
        synapse_factor=0.9,
        seed=5,
    )
    config = schedule.get_config()
    assert config["class_name"] == "tf_evosyn>EvolutionarySchedule"
    for restored in (
        EvolutionarySchedule.from_config(config["config"]),
        EvolutionarySchedule.from_config(config),
        keras.utils.deserialize_keras_object(config),
    ):
        assert isinstance(restored, EvolutionarySchedule)
        assert restored.get_config() == config
    assert schedule.environment.get_config() == {"cluster_factor": 0.7, "synapse_factor": 0.9}

    budget = EvolutionarySchedule(10, environment=tf_evosyn.SynapseBudget(0.5))
    restored = EvolutionarySchedule.from_config(budget.get_config())
    assert isinstance(restored.environment, tf_evosyn.SynapseBudget)
    assert restored.environment.get_config() == budget.environment.get_config()

    steps = tf.range(0, 60, dtype=tf.int64)
    in_graph = tf.function(
        lambda s: tf.map_fn(lambda t: schedule(t)[0], s, fn_output_signature=tf.bool)
    )
    should_prune = in_graph(steps)
    fired = [int(s) for s, p in zip(steps.numpy(), should_prune.numpy(), strict=True) if p]
    assert fired == [10, 17, 24, 31]  # begin + g * 7 for g = 1..4 (max_generations)
    assert fired == [s for s in range(60) if schedule.is_boundary(s)]
    assert [schedule.generation_at(s) for s in (9, 10, 16, 17, 59)] == [0, 1, 1, 2, 4]
    assert EvolutionarySchedule(10, end_step=25).generation_at(1000) == 2  # boundaries 10, 20

    with pytest.raises(ValueError):
        EvolutionarySchedule(0)
    with pytest.raises(ValueError):
        EvolutionarySchedule(10, begin_step=50, end_step=20)


class _MaskRecorder(keras.callbacks.Callback):
    """Living clusters (from the TF-MOT masks) after every training step."""

    def __init__(self):
        super().__init__()
        self.steps: list[tuple[int, dict[str, np.ndarray]]] = []

    def on_train_batch_end(self, batch, logs=None):
        wrappers = wrapped_layers(self.model)
        step = int(wrappers["conv1"].pruning_step.numpy())
        alive = {
            name: mask.reshape(-1, mask.shape[-1]).any(axis=0)
            for name, mask in _tfmot_masks(self.model).items()
        }
        self.steps.append((step, alive))


def _sparsity_summaries(log_dir: Path) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for path in sorted(log_dir.glob("metrics/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.endswith("/sparsity"):
                    values.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return values


def test_evolution_inside_one_fit(data, tmp_path):
    keras.utils.set_random_seed(1)
    schedule = EvolutionarySchedule(
        generation_steps=40, max_generations=3, cluster_factor=0.8, synapse_factor=0.95, seed=0
    )
    model = _compile(prune_with_evolution(lenet5(), schedule))
    callback = EvolutionaryPruningCallback(schedule)
    recorder = _MaskRecorder()
    log_dir = tmp_path / "logs"
    history = model.fit(
        data["x"],
        data["y"],
        batch_size=32,
        epochs=5,  # 32 steps per epoch: 160 steps, boundaries before steps 40, 80 and 120
        shuffle=True,
        verbose=0,
        callbacks=[callback, recorder, tfmot.sparsity.keras.PruningSummaries(str(log_dir))],
    )
    assert [record.step for record in callback.history] == [40, 80, 120]
    assert [record.generation for record in callback.history] == [1, 2, 3]
    assert np.isfinite(history.history["loss"]).all()

    # Structured sparsity that grows at every boundary, and nothing dead ever comes back.
    dead_counts = []
    previous = {name: np.ones(n, bool) for name, n in zip(EVOLVED, (20, 50, 500, 10), strict=True)}
    for record in callback.history:
        for name, alive in record.cluster_alive.items():
            assert not (alive & ~previous[name]).any()
        assert record.cluster_alive["fc2"].all()  # classes are protected
        dead_counts.append(sum(int((~alive).sum()) for alive in record.cluster_alive.values()))
        previous = record.cluster_alive
    assert 0 < dead_counts[0] < dead_counts[1] < dead_counts[2]
    assert schedule.realized_sparsity > 0.5

    # Masks only change at boundaries: TF-MOT's own update never touched them.
    changes = [
        step
        for (_, before), (step, after) in zip(recorder.steps, recorder.steps[1:], strict=False)
        if any((before[n] != after[n]).any() for n in EVOLVED)
    ]
    assert changes == [40, 80, 120]

    # Dead clusters are whole zero kernel columns (filters/units) with zero bias.
    final = callback.history[-1].cluster_alive
    for name, wrapper in wrapped_layers(model).items():
        kernel, mask = (v.numpy() for v in kernel_pruning_vars(wrapper))
        columns = kernel.reshape(-1, kernel.shape[-1])
        assert not columns[:, ~final[name]].any()
        assert not mask.reshape(-1, kernel.shape[-1])[:, ~final[name]].any()
        assert not wrapper.layer.bias.numpy()[~final[name]].any()
        assert np.all(kernel[mask == 0] == 0.0)
    assert (~final["conv1"]).any() and (~final["conv2"]).any() and (~final["fc1"]).any()

    # The result still classifies MNIST, strips to a plain model and converts back exactly.
    accuracy = model.evaluate(data["x_test"], data["y_test"], verbose=0)[1]
    assert accuracy > 0.4  # chance is 0.1; ~99% of the synapses are gone
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    assert _max_diff(model, stripped, data["x_test"]) <= 1e-5
    back = from_tfmot(model)
    assert _max_diff(model, back, data["x_test"]) <= 1e-5
    counts = tf_evosyn.count_living(back)
    assert (counts.synapses, counts.clusters) == (
        callback.history[-1].synapses,
        callback.history[-1].clusters,
    )

    # TF-MOT's PruningSummaries wrote each mask's sparsity at every epoch start (steps 0, 32,
    # 64, 96, 128): nothing before the first generation, then growth at every generation.
    summaries = _sparsity_summaries(log_dir)
    assert len(summaries) == 4
    for name in EVOLVED:
        (values,) = [v for tag, v in summaries.items() if f"_{name}/mask" in tag]
        assert values[0] == values[1] == 0.0
        assert 0.0 < values[2] < values[3] < values[4]


def test_callback_drives_directly_wrapped_evolvable_layers(data):
    keras.utils.set_random_seed(2)
    schedule = EvolutionarySchedule(generation_steps=3, max_generations=2, seed=3)
    model = _compile(
        tfmot.sparsity.keras.prune_low_magnitude(
            tf_evosyn.evolvable(lenet5()), pruning_schedule=KeepMasks()
        )
    )
    callback = EvolutionaryPruningCallback(schedule)
    model.fit(data["x"][:256], data["y"][:256], batch_size=32, verbose=0, callbacks=[callback])
    assert [record.step for record in callback.history] == [3, 6]
    for name, mask in _tfmot_masks(model).items():
        inner = wrapped_layers(model)[name].layer
        np.testing.assert_array_equal(inner.living_synapse_mask(), mask)
        np.testing.assert_array_equal(
            inner.living_cluster_mask(), callback.history[-1].cluster_alive[name]
        )
    assert not wrapped_layers(model)["fc2"].layer.evolve_clusters
    assert callback.history[-1].cluster_alive["fc2"].all()
    assert tf_evosyn.count_living(from_tfmot(model)).synapses == callback.history[-1].synapses


def test_callback_refuses_wrappers_that_prune_by_magnitude(data):
    model = _compile(tfmot.sparsity.keras.prune_low_magnitude(lenet5()))  # ConstantSparsity
    callback = EvolutionaryPruningCallback(EvolutionarySchedule(generation_steps=2))
    with pytest.raises(ValueError, match="KeepMasks"):
        model.fit(data["x"][:32], data["y"][:32], verbose=0, callbacks=[callback])


def test_functional_model_round_trip():
    inputs = keras.Input((12, 12, 3))
    hidden = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    hidden = keras.layers.GlobalAveragePooling2D(name="gap")(hidden)
    logits = keras.layers.Dense(5, name="dense")(hidden)
    plain = keras.Model(inputs, keras.layers.Softmax(name="probs")(logits))
    keras.utils.set_random_seed(4)
    evolved, _ = tf_evosyn.synthesize(
        tf_evosyn.evolvable(plain), tf_evosyn.ConstantFactor(0.6), seed=1
    )
    assert not evolved.get_layer("conv").living_cluster_mask().all()
    pruned = to_tfmot(evolved)
    back = from_tfmot(pruned)
    x = np.random.default_rng(0).random((4, 12, 12, 3), dtype=np.float32)
    assert _max_diff(evolved, pruned, x) <= 1e-5
    assert _max_diff(evolved, back, x) <= 1e-5
    assert not back.get_layer("dense").evolve_clusters  # protected through the Softmax
    for name in ("conv", "dense"):
        np.testing.assert_array_equal(
            back.get_layer(name).living_synapse_mask(), _living(evolved)[name]
        )
