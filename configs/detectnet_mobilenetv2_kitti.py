"""DetectNet's heads on an ImageNet-pretrained MobileNetV2 trunk, KITTI Car, on a 2-core CPU.

    evosyn-detect --config=configs/detectnet_mobilenetv2_kitti.py --workdir=runs/kitti_mnv2
    python benchmarks/kitti_detectnet.py   # runs this config by default

DetectNet as configs/detectnet_kitti.py (coverage + bbox heads at stride 16, its targets and
losses, 1248x384 padded input, DetectNet's augmentation, groupRectangles clustering) but the
trunk is keras.applications.MobileNetV2 1.0 cut at block_13_expand_relu with the ImageNet weights
of ``model.backbone_weights`` ("default": ``$EVOSYN_DATA_DIR/../weights/``
mobilenet_v2_1.0_224_no_top.h5). The recipe was measured on the real 61-image train block
(docs/detection.md): trained from scratch DetectNet finds no car; with this trunk a linear 1x1
bbox head still regresses corners ~22% of the box width off, a 3x3 depthwise + 1x1 hidden layer
and log-distance box coding (tf_evosyn/models/box_coding.py) with the bbox loss weighted 10
halve that. Clustering: groupRectangles with eps 0.2 and one supporting proposal, as the boxes of
neighbouring cells of a 61-image detector agree to ~10%, not DetectNet's 2%.
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
    config.model = ml_collections.ConfigDict(
        {
            "name": "detectnet_mobilenetv2",
            # "default" = $EVOSYN_DATA_DIR/../weights/mobilenet_v2_1.0_224_no_top.h5, or a path.
            "backbone_weights": "default",
            "trunk_end": "block_13_expand_relu",
            "dropout": 0.0,
            "bbox_hidden": 256,
            "box_coding": "log_distance",
            "freeze_batchnorm": True,
        }
    )
    config.detection.coverage_positive_weight = 20.0
    config.detection.bbox_loss_weight = 10.0
    config.detection.coverage_threshold = 0.3
    config.detection.rect_threshold = 1
    config.detection.rect_eps = 0.2
    config.train.epochs = 30
    config.train.batch_size = 4
    config.train.learning_rate = 5e-4
    config.train.schedule = "cosine"
    # Each generation keeps ~70% of every layer's filters (~1.4x fewer clusters a generation,
    # the coupled channels of the residual adds included): six pass the paper's 8.16x; stop
    # at 12x.
    config.evolution.generations = 10
    config.evolution.stop_at.cluster_efficiency = 12.0
    config.evolution.epochs_per_generation = 4
    config.evolution.learning_rate = 2e-4
    config.evolution.max_attempts = 2
    config.evolution.cluster_budget_fraction = 0.7
    config.evolution.compact_offspring = True
    config.log.fit_verbose = 2
    config.log.tensorboard_fit_logs = False
    config.log.learning_curve_every = 5  # ancestor's train/validation AP every 5 epochs
    return config
