"""Nested models: evolvable() flattens models inside models (the transfer-learning pattern and
deeper nestings) into one graph that evolves, compacts exactly, saves and exports."""

import numpy as np
import pytest
from helpers import cifar_images, plain_params, random_bn, relative_difference

import tf_evosyn
from tf_evosyn._keras import keras, tf
from tf_evosyn.core.flatten import flatten_model
from tf_evosyn.hardware.flops import count_flops

layers = keras.layers


@pytest.fixture(scope="module")
def images(datasets_dir) -> np.ndarray:
    return cifar_images(datasets_dir, count=16)


def small_backbone(name: str) -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    return keras.Model(inputs, x, name=name)


def nested_twice() -> keras.Model:
    """A Sequential holding a Functional that holds a Functional; inner names collide."""
    inner = small_backbone("inner")
    middle_in = keras.Input((32, 32, 3))
    x = inner(middle_in)
    x = layers.Conv2D(12, 1, name="conv")(x)  # same name as a layer of `inner`
    middle = keras.Model(middle_in, x, name="middle")
    return keras.Sequential(
        [keras.Input((32, 32, 3)), middle, layers.GlobalAveragePooling2D(), layers.Dense(10)],
        name="outer",
    )


def transfer_model() -> keras.Model:
    base = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    return keras.Sequential(
        [base, layers.GlobalAveragePooling2D(), layers.Dense(10)], name="transfer"
    )


def test_flatten_inlines_every_depth_keeps_weights_and_makes_names_unique(images):
    keras.utils.set_random_seed(0)
    model = nested_twice()
    random_bn(model, np.random.default_rng(0))
    assert tf_evosyn.evolvability_report(model) == []  # looks inside the nested models
    flat = flatten_model(model)
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    names = [layer.name for layer in flat.layers]
    assert len(names) == len(set(names))
    assert {"conv", "middle_conv", "bn", "dw"} <= set(names)
    np.testing.assert_allclose(flat(images).numpy(), model(images).numpy(), atol=1e-6)
    # Weights are copies: changing the flat model leaves the original alone.
    flat.get_layer("middle_conv").kernel.assign(np.zeros((1, 1, 8, 12)))
    assert np.abs(model.get_layer("middle").get_layer("conv").kernel.numpy()).sum() > 0


def test_subclassed_nested_model_is_refused_with_a_clear_message():
    class Block(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, Block()(inputs))
    with pytest.raises(ValueError, match="subclassed or unbuilt"):
        tf_evosyn.evolvable(model)


def test_transfer_learning_pattern_evolves_compacts_exactly_and_round_trips(images, tmp_path):
    keras.utils.set_random_seed(0)
    model = transfer_model()
    random_bn(model, np.random.default_rng(1))
    evolved = tf_evosyn.evolvable(model)
    np.testing.assert_allclose(evolved(images).numpy(), model(images).numpy(), atol=1e-5)
    offspring, _ = tf_evosyn.synthesize(evolved, tf_evosyn.ConstantFactor(0.6, 0.9), seed=3)
    compacted = tf_evosyn.compact(offspring)
    expected = offspring(images, training=False).numpy()
    assert relative_difference(expected, compacted(images, training=False).numpy()) <= 1e-4
    assert plain_params(compacted) < plain_params(model)
    # count_flops, save/load with masks on the flattened, evolved model
    report = count_flops(offspring)
    assert report.total_living_macs < report.total_dense_macs
    path = tf_evosyn.save_model(offspring, tmp_path / "offspring")
    loaded = tf_evosyn.load_model(path)
    np.testing.assert_allclose(loaded(images).numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_transfer_learning_pattern_evolves_on_real_data_and_exports(datasets_dir, tmp_path):
    """The user's path: Evolution loop on real CIFAR-10 images, then every export artifact."""
    from tf_evosyn import Evolution, EvolutionSettings
    from tf_evosyn.export.artifacts import export_model

    with np.load(datasets_dir / "cifar10_subset" / "cifar10_data_batch_1_first4000.npz") as data:
        x, y = data["x"][:384].astype(np.float32) / 255.0, data["y"][:384]
    train = tf.data.Dataset.from_tensor_slices((x[:256], y[:256]))
    test = tf.data.Dataset.from_tensor_slices((x[256:], y[256:])).batch(128)

    def compile_fn(model):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    keras.utils.set_random_seed(0)
    settings = EvolutionSettings(
        generations=1,
        epochs_per_generation=1,
        environment=tf_evosyn.ConstantFactor(0.7, 0.9),
        accuracy_tolerance=1.0,
        fit_verbose=0,
        tensorboard_fit_logs=False,
    )
    evolution = Evolution(
        tmp_path / "run",
        compile_fn=compile_fn,
        train_data=lambda seed: train.shuffle(256, seed=seed).batch(64),
        test_data=test,
        settings=settings,
    )
    records = evolution.run(transfer_model(), ancestor_epochs=1)
    assert [r["generation"] for r in records][-1] == 1
    best = tf_evosyn.load_model(tmp_path / "run" / "generations" / "gen_0001")
    result = export_model(best, tmp_path / "export", (x[256:320] * 255).astype(np.uint8))
    assert result["parameters"]["exported"] < result["parameters"]["model"]
    differences = result["max_abs_difference"]
    assert differences["tflite"] < 1e-3 and differences["saved_model"] < 1e-3
