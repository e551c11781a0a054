"""LSTM, GRU and SimpleRNN: the hidden units are clusters (gates, recurrent row and column
together), on hand-checkable shapes; stacked and sequence-returning layers compact exactly;
the compacted model exports; a short real evolution reads MNIST rows as sequences."""

import json

import numpy as np
import pytest
from helpers import REPO, binary_command, read_lineage, run_binary

from tf_evosyn import compact, evolvability_report, evolvable
from tf_evosyn._keras import keras
from tf_evosyn.compaction.report import compaction_report
from tf_evosyn.core.recurrent import EvoGRU, EvoLSTM, EvoSimpleRNN, from_matrix, to_matrix
from tf_evosyn.environments.base import ConstantFactor
from tf_evosyn.export.artifacts import export_model
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.interop.tfmot import PruneLowMagnitude, from_tfmot, to_tfmot
from tf_evosyn.synthesis.offspring import synthesize
from tf_evosyn.zoo import plain_params, relative_difference

RNG = np.random.default_rng(0)
KINDS = [
    (keras.layers.LSTM, EvoLSTM, {}),
    (keras.layers.GRU, EvoGRU, {}),  # reset_after=True: a (2, 3u) bias
    (keras.layers.GRU, EvoGRU, {"reset_after": False}),
    (keras.layers.SimpleRNN, EvoSimpleRNN, {}),
]


def _sequences(steps=5, features=3, count=2):
    return RNG.normal(size=(count, steps, features)).astype(np.float32)


def test_matrix_view_stacks_both_kernels_per_gate():
    kernel = np.arange(3 * 8, dtype=np.float32).reshape(3, 8)  # 3 inputs, 4 gates x 2 units
    recurrent = 100 + np.arange(2 * 8, dtype=np.float32).reshape(2, 8)
    matrix = to_matrix(kernel, recurrent, gates=4)
    assert matrix.shape == (4, 5, 2)
    for g in range(4):
        for j in range(2):
            assert all(matrix[g, c, j] == kernel[c, g * 2 + j] for c in range(3))
            assert all(matrix[g, 3 + i, j] == recurrent[i, g * 2 + j] for i in range(2))
    back = from_matrix(matrix, inputs=3)
    np.testing.assert_array_equal(back[0], kernel)
    np.testing.assert_array_equal(back[1], recurrent)


@pytest.mark.parametrize("plain, twin, kwargs", KINDS)
def test_twin_equals_plain_and_a_dead_unit_emits_zero_at_every_step(plain, twin, kwargs):
    reference = plain(4, return_sequences=True, **kwargs)
    evolved = twin(4, return_sequences=True, **kwargs)
    x = _sequences()
    reference(x)
    evolved(x)
    evolved.copy_plain_weights(reference)
    np.testing.assert_allclose(evolved(x).numpy(), reference(x).numpy(), atol=1e-6)
    clusters = np.array([1, 1, 0, 1])
    evolved.set_masks(np.ones(evolved.matrix_shape), clusters)
    assert np.abs(evolved(x).numpy()[..., 2]).max() == 0.0  # every time step
    # Its gate columns and its recurrent row (what it feeds the others) die with it.
    synapses = evolved.living_synapse_mask()
    assert not synapses[:, :, 2].any() and not synapses[:, 3 + 2, :].any()
    assert synapses[:, 3 + 1, :].sum() == evolved.gates * 3  # a living unit's row: 3 columns
    restored = twin.from_config(evolved.get_config())
    assert restored.get_config() == evolved.get_config()


def _stacked(rnn, **kwargs) -> keras.Model:
    """Dense -> BN (non-zero beta: dead channels are constants) -> rnn(seq) -> rnn -> Dense."""
    inputs = keras.Input((6, 5))
    x = keras.layers.Dense(8, activation="relu", name="embed")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = rnn(12, return_sequences=True, name="rnn1", **kwargs)(x)
    x = rnn(10, name="rnn2", **kwargs)(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))
    bn = model.get_layer("bn")
    bn.beta.assign(RNG.uniform(-0.5, 0.5, 8))
    bn.moving_mean.assign(RNG.uniform(-0.5, 0.5, 8))
    return model


@pytest.mark.parametrize("plain, twin, kwargs", KINDS)
def test_stacked_recurrent_model_compacts_exactly_and_shrinks(plain, twin, kwargs):
    keras.utils.set_random_seed(1)
    model = _stacked(plain, **kwargs)
    offspring, _ = synthesize(evolvable(model), ConstantFactor(0.7, 0.9), seed=2)
    compacted = compact(offspring)
    x = _sequences(6, 5, count=3)
    assert relative_difference(offspring(x).numpy(), compacted(x).numpy()) < 1e-5
    assert plain_params(compacted) <= 0.65 * plain_params(model)
    rows = {row["name"]: row for row in compaction_report(offspring, compacted)}
    for name in ("rnn1", "rnn2"):
        living = int(offspring.get_layer(name).living_cluster_mask().sum())
        assert rows[name]["channels_after"] == living < rows[name]["channels_before"]
    # The next layer's input rows follow: rnn2 reads rnn1's living units only.
    assert compacted.get_layer("rnn2").cell.kernel.shape[0] == rows["rnn1"]["channels_after"]


def test_a_removed_constant_input_folds_into_the_bias():
    keras.utils.set_random_seed(3)
    model = evolvable(_stacked(keras.layers.LSTM), protect_outputs=False)
    embed = model.get_layer("embed")
    mask = np.ones(8)
    mask[[1, 5]] = 0  # relu(0) = 0, then BN: the constants (0 - mean) / std * gamma + beta
    embed.set_masks(np.ones(embed.matrix_shape), mask)
    compacted = compact(model)
    assert compacted.get_layer("rnn1").cell.kernel.shape[0] == 6
    x = _sequences(6, 5, count=3)
    assert relative_difference(model(x).numpy(), compacted(x).numpy()) < 1e-5


def test_unsupported_recurrent_layers_are_reported_with_the_reason():
    inputs = keras.Input((5, 3))
    x = keras.layers.SimpleRNN(4, activation="sigmoid", return_sequences=True, name="sig")(inputs)
    outputs = keras.layers.LSTM(2, name="ok")(x)
    report = {s.name: s.reason for s in evolvability_report(keras.Model(inputs, outputs))}
    assert list(report) == ["sig"] and "activation(0)" in report["sig"]
    evolved = evolvable(keras.Model(inputs, outputs))
    assert type(evolved.get_layer("sig")) is keras.layers.SimpleRNN
    assert type(evolved.get_layer("ok")) is EvoLSTM


def test_macs_count_both_kernels_at_every_step():
    inputs = keras.Input((5, 3))
    model = evolvable(
        keras.Model(inputs, keras.layers.LSTM(4, name="lstm")(inputs)), protect_outputs=False
    )
    layer = model.get_layer("lstm")
    layer.set_masks(np.ones(layer.matrix_shape), np.array([1, 1, 1, 0]))
    row = count_flops(model).layers[0]
    assert row.dense_macs == 5 * (3 * 16 + 4 * 16)
    # 3 living units: 4 gates x (3 inputs + 3 living recurrent rows) each, at 5 steps
    assert row.living_macs == 5 * 4 * (3 + 3) * 3


@pytest.mark.slow
def test_compacted_recurrent_model_exports_to_savedmodel_and_tflite(tmp_path):
    keras.utils.set_random_seed(4)
    offspring, _ = synthesize(
        evolvable(_stacked(keras.layers.LSTM)), ConstantFactor(0.7, 0.9), seed=0
    )
    result = export_model(offspring, tmp_path, _sequences(6, 5, count=4), preprocess_images=False)
    differences = result["max_abs_difference"]
    assert differences["saved_model"] < 1e-4 and differences["tflite"] < 1e-4, differences
    assert result["parameters"]["exported"] < result["parameters"]["model"]


@pytest.mark.slow
def test_lstm_evolves_on_real_mnist_rows(tmp_path, datasets_dir):
    workdir = tmp_path / "run"
    command = binary_command(
        "evolve_classification",
        REPO / "configs" / "lstm_mnist_rows.py",
        workdir,
        "--config.data.train_limit=2000",
        "--config.data.validation_size=500",
        "--config.data.test_limit=500",
        "--config.train.epochs=2",
        "--config.evolution.generations=2",
        "--config.evolution.final_epochs=0",
        "--config.evolution.accuracy_tolerance=0.5",
    )
    run_binary(command, datasets_dir)
    lineage = read_lineage(workdir)
    assert [r["generation"] for r in lineage] == [0, 1, 2]
    assert lineage[0]["accuracy"] > 0.3  # learns from real digits (10% is chance)
    assert lineage[-1]["cluster_efficiency"] > 1.1 and lineage[-1]["synaptic_efficiency"] > 1.2
    config = json.loads((workdir / "config.json").read_text())
    assert config["model"]["name"] == "lstm_rows"


@pytest.mark.parametrize("plain", [keras.layers.LSTM, keras.layers.GRU])
def test_tfmot_round_trip_keeps_the_units_and_synapses_of_recurrent_layers(plain):
    keras.utils.set_random_seed(5)
    offspring, _ = synthesize(evolvable(_stacked(plain)), ConstantFactor(0.7, 0.9), seed=1)
    pruned = to_tfmot(offspring)
    assert all(
        isinstance(pruned.get_layer(f"prune_low_magnitude_{n}"), PruneLowMagnitude)
        for n in ("rnn1", "rnn2")
    )
    x = _sequences(6, 5, count=3)
    np.testing.assert_allclose(pruned(x).numpy(), offspring(x).numpy(), atol=1e-5)
    back = from_tfmot(pruned)
    for name in ("rnn1", "rnn2"):
        for mask in ("living_cluster_mask", "living_synapse_mask"):
            np.testing.assert_array_equal(
                getattr(back.get_layer(name), mask)(), getattr(offspring.get_layer(name), mask)()
            )
