"""The KITTI benchmark that fits a 2-core CPU: benchmarks/kitti_detectnet.py's default.

    python benchmarks/kitti_detectnet.py --config=configs/detectnet_kitti_bench.py

DetectNet exactly as configs/detectnet_kitti.py (GoogLeNet trunk without pool4, coverage + bbox
heads, the paper's 1248x384 padded input, DetectNet's augmentation and clustering) on the real
103-image KITTI subset (train 61 / validation 21 / test 21 images, ID blocks: NOT KITTI's
benchmark split), but a quarter of the width (every conv has 1/4 of its filters), BatchNorm
in place of GoogLeNet's LRN, and covered cells weighted 20x in the coverage loss: trained from
scratch on 61 images, DetectNet's own loss collapses the coverage map to 0 everywhere (measured:
no detection after 40 epochs), this one learns. The paper config needs ~6 minutes per epoch
of 82 images here (README); this one about half a minute.
"""

import importlib.util
import pathlib

import ml_collections


def _base_config() -> ml_collections.ConfigDict:
    path = pathlib.Path(__file__).with_name("detectnet_kitti.py")
    spec = importlib.util.spec_from_file_location("detectnet_kitti_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config() -> ml_collections.ConfigDict:
    config = _base_config()
    config.model.width = 0.25
    config.model.normalization = "batchnorm"
    config.detection.coverage_positive_weight = 20.0
    config.train.epochs = 30
    config.train.batch_size = 4
    config.train.learning_rate = 1e-3
    config.train.schedule = "cosine"
    config.evolution.generations = 8
    config.evolution.epochs_per_generation = 3
    config.evolution.learning_rate = 2e-4
    config.evolution.max_attempts = 2
    config.log.fit_verbose = 2
    config.log.tensorboard_fit_logs = False
    return config
