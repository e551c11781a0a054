"""An LSTM reading MNIST images row by row (28 steps of 28 pixels): evolution of a recurrent
network, whose clusters are the LSTM's hidden units (tf_evosyn/core/recurrent.py).

    evosyn-classify --config=configs/lstm_mnist_rows.py --workdir=runs/lstm_mnist_rows

No text or sequence dataset ships with the installed packages (Keras' and TFDS' download),
so the real MNIST files are read as sequences. Each generation keeps ~85% of the LSTM's units
and 80% of its synapses; the class outputs are protected.
"""

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
    config.model = ml_collections.ConfigDict({"name": "lstm_rows"})
    config.train.epochs = 6
    config.evolution.generations = 8
    config.evolution.epochs_per_generation = 1
    config.evolution.epochs_per_doubling = 1.0
    config.evolution.max_epochs_per_generation = 3
    config.evolution.final_epochs = 3
    config.evolution.accuracy_tolerance = 0.01
    config.evolution.layer_budgets = ml_collections.ConfigDict(
        {"lstm": {"cluster_fraction": 0.85, "synapse_fraction": 0.8}}
    )
    return config
