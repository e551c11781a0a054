"""A 2-generation AlexNet (Caffe cifar10_full) run on the real 4000-image CIFAR-10 subset: about
a minute on a CPU.

    EVOSYN_DATA_DIR=/work/shared/datasets evosyn-classify \
        --config=configs/alexnet_cifar10_smoke.py --workdir=runs/alexnet_smoke

The recipe of configs/alexnet_cifar10.py (Caffe's cifar10_full solver: SGD momentum 0.9, rate
0.001, weight decay 0.004, batch 100, Caffe-scaled mean-subtracted inputs), shortened: one
ancestor epoch, two generations of one fine-tuning epoch. Data: ``cifar10_subset``, the first
4000 images of CIFAR-10 training batch 1 (see $EVOSYN_DATA_DIR/cifar10_subset/SOURCE.md); its
first 80% train and its last 20% (800 images) test. That test split is NOT the official CIFAR-10
test set, so the accuracies are not comparable with published ones; Caffe's small rate needs
many epochs (one epoch on 3200 images stays near chance, ~12%; ten reach ~40%), hence the
lenient accuracy tolerance. The piecewise boundaries (epochs 120, 130) never take effect here.
"""

import importlib.util
import pathlib

import ml_collections


def _base_config() -> ml_collections.ConfigDict:
    # Config files are loaded by path (not as a package), so load the sibling the same way.
    path = pathlib.Path(__file__).with_name("alexnet_cifar10.py")
    spec = importlib.util.spec_from_file_location("alexnet_cifar10_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config() -> ml_collections.ConfigDict:
    config = _base_config()
    config.data.name = "cifar10_subset"  # NOT the official test split (see the docstring)
    config.data.source = "local"
    config.data.test_fraction = 0.2
    config.data.train_limit = 0  # all 3200 training images of the subset
    config.data.test_limit = 0  # all 800 held-out images
    config.data.validation_size = 400  # the last 400 of the 3,200 training images
    config.train.epochs = 1
    config.evolution.generations = 2
    config.evolution.epochs_per_generation = 1
    config.evolution.max_attempts = 1
    config.evolution.accuracy_tolerance = 0.5  # lenient: one epoch is far from converged
    config.log.fit_verbose = 2
    config.log.tensorboard_fit_logs = False
    # Scale knobs, as in the base config; e.g. two replicas on one CPU:
    #   --strategy=mirrored --config.distribute.num_cpu_devices=2
    config.distribute.strategy = "default"
    config.distribute.num_cpu_devices = 0
    return config
