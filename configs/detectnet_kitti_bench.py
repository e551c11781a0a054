"""The KITTI benchmark that fits a 2-core CPU: benchmarks/kitti_detectnet.py's default.

    python benchmarks/kitti_detectnet.py --config=configs/detectnet_kitti_bench.py

DetectNet exactly as configs/detectnet_kitti.py (GoogLeNet trunk without pool4, coverage + bbox
heads, the paper's 1248x384 padded input, DetectNet's augmentation and clustering) on the real
103-image KITTI subset (train 61 / validation 21 / test 21 images, ID blocks: NOT KITTI's
benchmark split), but a quarter of the width (every conv has 1/4 of its filters) and BatchNorm
in place of GoogLeNet's LRN, which trains from scratch far faster on 61 images. The paper config
needs ~15 minutes per epoch here (see README); this one about half a minute.
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
    config.train.epochs = 40
    config.train.batch_size = 4
    config.train.learning_rate = 5e-4
    config.train.schedule = "cosine"
    config.evolution.generations = 10
    config.evolution.epochs_per_generation = 4
    config.evolution.learning_rate = 2e-4
    config.evolution.max_attempts = 2
    config.log.fit_verbose = 2
    config.log.tensorboard_fit_logs = False
    return config
