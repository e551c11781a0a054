"""A 2-generation LeNet-5 run on a small real MNIST subset: a few minutes on a laptop CPU."""

import importlib.util
import pathlib

import ml_collections


def _base_config() -> ml_collections.ConfigDict:
    # Config files are loaded by path (not as a package), so load the sibling the same way.
    path = pathlib.Path(__file__).with_name("lenet5_mnist.py")
    spec = importlib.util.spec_from_file_location("lenet5_mnist_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config() -> ml_collections.ConfigDict:
    config = _base_config()
    config.data.train_limit = 2000
    config.data.test_limit = 500
    config.data.validation_size = 1000
    config.train.epochs = 1
    config.evolution.generations = 2
    config.evolution.epochs_per_generation = 1
    config.evolution.accuracy_tolerance = 0.5
    config.log.tensorboard_fit_logs = False
    # Scale knobs, as in the base config; e.g. two replicas on one CPU:
    #   --strategy=mirrored --config.distribute.num_cpu_devices=2
    config.distribute.strategy = "default"
    config.distribute.num_cpu_devices = 0
    config.train.mixed_precision = "float32"
    config.train.jit_compile = False
    return config
