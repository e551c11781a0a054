"""DetectNet on KITTI (Car): the "Evolution in Groups" detection experiment.

    evosyn-detect --config=configs/detectnet_kitti.py --workdir=runs/detectnet_kitti

NVIDIA's DetectNet (examples/kitti/detectnet_network.prototxt of NVIDIA/caffe): GoogLeNet up to
inception_5b without pool4 (stride 16), coverage + bbox heads, 1248x384 padded input, DIGITS'
KITTI recipe (Adam 1e-4, exponential decay 0.98, batch 10 = 2 x accumulation 5, 160 epochs).
Data: the KITTI object folder (``training/image_2`` + ``training/label_2``) from
``$EVOSYN_DATA_DIR/kitti`` or ``--config.data.data_dir``, split into train / validation by ID
blocks (NOT KITTI's benchmark split); or TFDS ``kitti`` (``--config.data.source=tfds``).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "detection"  # evosyn-detect (the task registry: tf_evosyn.runs.registry)
    config.seed = 0
    config.deterministic = True

    config.model = ml_collections.ConfigDict()
    config.model.name = "detectnet"
    config.model.width = 1.0  # multiplies every conv's filters (1.0 = the paper's network)
    # lrn: GoogLeNet's cross-channel LRN, as NVIDIA (a barrier: the convs feeding it keep their
    # filters); batchnorm: BatchNormalization in its place (every conv evolves); none.
    config.model.normalization = "lrn"
    config.model.backbone_weights = ""  # trunk weights you supply (e.g. converted ImageNet)

    config.data = ml_collections.ConfigDict()
    config.data.name = "kitti"
    config.data.source = "auto"  # local folder if data_dir or $EVOSYN_DATA_DIR/kitti, else TFDS
    config.data.data_dir = ""
    config.data.tfds_data_dir = ""
    config.data.download = False  # TFDS kitti is ~12 GB; set True to let TFDS download it
    config.data.classes = ("Car",)
    config.data.image_height = 384  # padded (never resized) to this network input
    config.data.image_width = 1248
    config.data.validation_fraction = 0.2  # local folder: the last 20% of IDs, one block
    config.data.train_limit = 0
    config.data.max_boxes = 64
    config.data.augment = True  # DetectNet's augmentation: flip, shift, scale, hue/saturation

    # How grid outputs become boxes: DetectNet's clustering (examples/kitti cluster layer).
    config.detection = ml_collections.ConfigDict()
    config.detection.decoder = "cluster"  # cluster (groupRectangles) | nms (keras-cv)
    config.detection.coverage_threshold = 0.6
    config.detection.rect_threshold = 3
    config.detection.rect_eps = 0.02
    config.detection.min_height = 22.0
    config.detection.nms_iou = 0.5
    # 1: DetectNet's coverage loss. > 1 weighs covered cells more: not DetectNet's, an option
    # for training from scratch on a few images (see tf_evosyn/detection/losses.py).
    config.detection.coverage_positive_weight = 1.0

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 160
    config.train.batch_size = 10
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-4
    config.train.schedule = "exponential"
    config.train.decay_factor = 0.98  # per epoch
    config.train.ancestor_path = ""
    config.train.mixed_precision = "float32"
    config.train.jit_compile = False

    config.evolution = ml_collections.ConfigDict()
    config.evolution.generations = 10
    config.evolution.epochs_per_generation = 20
    # Longer fine-tuning as the network shrinks: + round(this * log2(parent's cluster
    # efficiency)) epochs, at most max_epochs_per_generation (0 = no cap).
    config.evolution.epochs_per_doubling = 0.0
    config.evolution.max_epochs_per_generation = 0
    # > 0: best/ trains this many more epochs after the last generation (kept if validation
    # does not drop; lineage: one more generation, final: true).
    config.evolution.final_epochs = 0
    # Stop after the first accepted generation at least this efficient against the ancestor
    # (0 = no target; generations stays the cap): --config.evolution.stop_at.cluster_efficiency=14
    config.evolution.stop_at = ml_collections.ConfigDict(
        {"synaptic_efficiency": 0.0, "cluster_efficiency": 0.0, "flops_efficiency": 0.0}
    )
    # Floors: layers that keep at least this many living clusters whatever the environment
    # draws, e.g. {"conv1": 7} (empty = none; override one with --config.evolution.min_clusters.X=N
    # once the config names X).
    config.evolution.min_clusters = ml_collections.ConfigDict()
    config.evolution.optimizer = "adam"
    config.evolution.learning_rate = 1e-4
    config.evolution.schedule = "cosine"
    # Each generation keeps ~80% of every layer's filters and 70% of its synapses: ten
    # generations give ~9x fewer clusters where the paper reports 8.16x.
    config.evolution.environment = "layer_budget"
    config.evolution.cluster_factor = 0.9
    config.evolution.synapse_factor = 1.0
    config.evolution.budget_fraction = 0.7
    config.evolution.budget_level = "synapse"
    config.evolution.budget_max_factor = 5.0
    config.evolution.cluster_budget_fraction = 0.8
    config.evolution.retry_relief = 0.5
    # flops_budget: each offspring keeps flops_fraction of its parent's MACs ('dense': what the
    # compacted network computes, or 'living' synapses); flops_budgets pins single layers.
    config.evolution.flops_fraction = 0.7
    config.evolution.flops_count = "dense"
    config.evolution.flops_budgets = None
    # > 1: keep every layer's living channels a multiple of this (8 suits XNNPACK and GPUs).
    config.evolution.align_channels = 0
    config.evolution.align_rounding = "stochastic"  # stochastic | nearest | down | up
    # latency_budget: keep latency_fraction of the parent's measured Conv2D/Dense time, or at
    # most latency_ms (set the other None), timed with TFLite at latency_threads threads.
    config.evolution.latency_fraction = 0.7
    config.evolution.latency_ms = None
    config.evolution.latency_threads = 1
    config.evolution.distill_temperature = 0.0
    config.evolution.distill_alpha = 0.1
    # Accept offspring whose Car Moderate AP|R40 is at most 10% (relative) below the ancestor's.
    config.evolution.relative_tolerance = 0.1
    config.evolution.select_on = "validation"  # validation | test (the papers' protocol)
    config.evolution.max_attempts = 3
    # Offspring per generation (the fittest by validation score and efficiency is the parent,
    # tf_evosyn/loop/population.py) and parents per offspring (m-parent synthesis, mating.py).
    config.evolution.population = 1
    config.evolution.parents = 1
    config.evolution.efficiency_weight = 0.005  # fitness = score + this * log2(cluster eff.)
    config.evolution.reinitialize = False
    # Heredity sharpness gamma: P = exp(gamma (|w|/z - 1)); 1.0 = the papers' model.
    config.evolution.synapse_sharpness = 1.0
    config.evolution.cluster_sharpness = 1.0
    # True: each offspring is physically compacted (dead clusters removed, layers stay evolvable)
    # before fine-tuning, so generations get faster as the network shrinks. Needs parents = 1.
    config.evolution.compact_offspring = False
    config.evolution.selection = "most_efficient"

    config.distribute = ml_collections.ConfigDict()
    config.distribute.strategy = "default"
    config.distribute.tpu_address = ""
    config.distribute.num_cpu_devices = 0

    config.log = ml_collections.ConfigDict()
    config.log.fit_verbose = 2
    config.log.tensorboard_fit_logs = True
    return config
