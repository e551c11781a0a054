"""A thin, low-resolution DetectNet on a few real KITTI images: 2 generations in minutes.

    evosyn-detect --config=configs/detectnet_kitti_smoke.py --workdir=runs/detectnet_smoke
Same pipeline as configs/detectnet_kitti.py (real KITTI folder, ID-block split, augmentation,
clustering, KITTI AP), at 192x640 (a crop of the top-left of each image) and a quarter of
DetectNet's width. Its AP says nothing about the method: it checks the machinery.
"""

import importlib.util
import pathlib

import ml_collections


def _base_config() -> ml_collections.ConfigDict:
    # Config files are loaded by path (not as a package), so load the sibling the same way.
    path = pathlib.Path(__file__).with_name("detectnet_kitti.py")
    spec = importlib.util.spec_from_file_location("detectnet_kitti_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config() -> ml_collections.ConfigDict:
    config = _base_config()
    config.model.width = 0.25
    config.data.image_height = 192
    config.data.image_width = 640
    config.data.train_limit = 12
    config.train.epochs = 2
    config.train.batch_size = 4
    config.train.learning_rate = 1e-3
    config.evolution.generations = 2
    config.evolution.epochs_per_generation = 1
    config.evolution.learning_rate = 1e-4
    config.evolution.relative_tolerance = 1.0  # the smoke ancestor is untrained: accept all
    config.evolution.max_attempts = 1
    config.log.fit_verbose = 0
    config.log.tensorboard_fit_logs = False
    return config
