"""ResNet-56 on CIFAR-10 as in He et al. 2016 ("Deep Residual Learning for Image Recognition",
section 4.2), then evolved: the papers' CIFAR-10 ResNet experiment, sized for a GPU.

    evosyn-classify --config=configs/resnet56_cifar10.py --workdir=runs/resnet56_cifar10
    # on several GPUs (train.batch_size is the global batch), or from TFDS:
    evosyn-classify --config=configs/resnet56_cifar10.py --workdir=runs/resnet56_cifar10 \
        --strategy=mirrored --config.data.source=tfds

Ancestor recipe (the paper's): ResNet-56 (n = 9, option-A shortcuts, 848,944 kernel weights,
2,042 clusters), SGD with momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 divided by
10 at 32k and 48k iterations, stopped at 64k iterations; on the 50,000 training images a batch of
128 makes 391 steps per epoch, so: 164 epochs with the rate divided at epochs 82 and 123 (iteration
32,062, 48,093 and 64,124). Data: the full CIFAR-10 (the official 50,000/10,000 split) from the
python batches in ``$EVOSYN_DATA_DIR/cifar10/`` (or ``--config.data.data_dir`` pointing at
``cifar-10-batches-py``) or from TFDS ``cifar10``; 4-pixel pad + random 32x32 crop + horizontal
flip on training images, per-channel mean/std normalisation (statistics of the training split).
The paper reports 6.97% test error for ResNet-56.

Evolution (ours, not the papers'): each offspring inherits its parent's surviving weights and is
fine-tuned for 10 epochs with SGD (rate 0.01, momentum 0.9, cosine decay to 0 within the
generation): one tenth of the ancestor's peak rate, so inherited weights are adjusted rather
than re-learnt. The environment is ``layer_budget``: every layer keeps 90% of its clusters and
75% of its synapses per generation (in expectation), so no layer is emptied before the others,
and the 16-filter stem (conv1, read by every stage-1 block through the residual additions) keeps
95%/90%. ResNet's coupled groups (channels joined by residual additions, including the stem's
channels and the stage-1 blocks' second convolutions) live or die together: synthesis handles
them automatically, so the offspring stay physically compactable. The numbers were chosen by
analogy with the LeNet-5 runs and have not yet been tuned on full CIFAR-10 (no GPU here).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "classification"  # evosyn-classify (the task registry: tf_evosyn.runs.registry)
    config.seed = 0
    config.deterministic = True  # same seed -> same lineage on the same machine; False is faster

    config.model = ml_collections.ConfigDict()
    config.model.name = "resnet56"
    # SGD weight decay (L2 on every conv/dense kernel; see tf_evosyn/models/resnet_cifar.py).
    config.model.weight_decay = 1e-4

    config.data = ml_collections.ConfigDict()
    config.data.name = "cifar10"  # full CIFAR-10, official train/test split
    # auto: the python batches in data_dir or $EVOSYN_DATA_DIR/cifar10 if set, else TFDS.
    config.data.source = "auto"  # auto | local | tfds
    config.data.data_dir = ""  # folder with (or being) cifar-10-batches-py
    config.data.tfds_data_dir = ""
    config.data.download = True  # let TFDS download when source resolves to tfds
    config.data.train_limit = 0  # use only the first N training examples (0 = all)
    config.data.test_limit = 0
    # Evolution decides on a validation split held out from the END of the training data
    # (never on the test split, which is only recorded): data/validation.py.
    config.data.validation_size = 5000
    config.data.test_fraction = 0.2  # only for data.name=cifar10_subset (no official test split)
    config.data.augment = True  # pad 4 + random 32x32 crop + horizontal flip (training only)
    config.data.normalize = True  # per-channel mean/std of the training images
    config.data.normalize_style = "standardize"  # standardize | caffe (0-255 minus mean)

    # Ancestor training: He et al. 2016, section 4.2.
    config.train = ml_collections.ConfigDict()
    config.train.epochs = 164  # 64k iterations at 391 steps per epoch
    config.train.batch_size = 128
    config.train.optimizer = "sgd"
    config.train.learning_rate = 0.1
    config.train.momentum = 0.9
    config.train.nesterov = False
    config.train.schedule = "piecewise"  # constant | cosine | piecewise
    config.train.boundaries_epochs = (82, 123)  # /10 at 32k and 48k iterations
    config.train.decay_factor = 0.1
    config.train.warmup_epochs = 0.0  # linear warm-up epochs (the paper uses none for n = 9)
    config.train.ancestor_path = ""  # a trained model to start from instead of training one
    config.train.mixed_precision = "float32"  # float32 | mixed_float16 | mixed_bfloat16
    config.train.jit_compile = False  # XLA train/predict steps; needs deterministic = False

    # Offspring synthesis and fine-tuning.
    config.evolution = ml_collections.ConfigDict()
    config.evolution.generations = 15
    config.evolution.epochs_per_generation = 10
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
    config.evolution.optimizer = "sgd"
    config.evolution.learning_rate = 0.01
    config.evolution.momentum = 0.9
    config.evolution.nesterov = False
    config.evolution.schedule = "cosine"  # decays over each generation's fine-tuning
    config.evolution.boundaries_epochs = (5, 8)  # only used by schedule = piecewise
    config.evolution.decay_factor = 0.1
    config.evolution.warmup_epochs = 0.0
    config.evolution.environment = "layer_budget"  # constant | synapse_budget | layer_budget
    # layer_budget: per layer keep cluster_budget_fraction of the clusters and budget_fraction
    # of the synapses each generation; layer_budgets overrides both per layer.
    config.evolution.cluster_budget_fraction = 0.9
    config.evolution.budget_fraction = 0.75
    config.evolution.layer_budgets = ml_collections.ConfigDict(
        {"conv1": {"cluster_fraction": 0.95, "synapse_fraction": 0.9}}
    )
    config.evolution.budget_max_factor = 5.0  # > 1: a generous environment (probabilities clip)
    # constant: the papers' factors; synapse_budget: keep budget_fraction at budget_level.
    config.evolution.cluster_factor = 0.9
    config.evolution.synapse_factor = 1.0
    config.evolution.budget_level = "synapse"  # cluster | synapse | both
    # layer_budget: a re-draw after a rejection takes a smaller step (fraction ** 0.5 ** k).
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
    config.evolution.accuracy_tolerance = 0.01  # accept offspring within 1 point of the ancestor
    # validation (default): every decision on the held-out validation split, the test split
    # only recorded; test: the papers' protocol (selection on the reported test split).
    config.evolution.select_on = "validation"
    config.evolution.max_attempts = 3
    # Offspring per generation (the fittest by validation score and efficiency is the parent,
    # tf_evosyn/loop/population.py) and parents per offspring (m-parent synthesis, mating.py).
    config.evolution.population = 1
    config.evolution.parents = 1
    config.evolution.efficiency_weight = 0.005  # fitness = score + this * log2(cluster eff.)
    config.evolution.reinitialize = False  # True: architecture-only heredity
    # Heredity sharpness gamma: P = exp(gamma (|w|/z - 1)); 1.0 = the papers' model.
    config.evolution.synapse_sharpness = 1.0
    config.evolution.cluster_sharpness = 1.0
    # True: each offspring is physically compacted (dead clusters removed, layers stay evolvable)
    # before fine-tuning, so generations get faster as the network shrinks. Needs parents = 1.
    config.evolution.compact_offspring = False
    config.evolution.selection = "most_efficient"  # most_efficient | most_accurate

    # Where it runs (may change when a run is resumed). train.batch_size is the global batch:
    # each replica gets batch_size / replicas. Or --strategy=... on the command line.
    config.distribute = ml_collections.ConfigDict()
    config.distribute.strategy = "default"  # default | mirrored | multi_worker_mirrored | tpu
    config.distribute.tpu_address = ""  # tpu: TPU name or grpc://host:port ('local' on a TPU VM)
    config.distribute.num_cpu_devices = 0  # mirrored without GPU: split the CPU into N devices

    config.log = ml_collections.ConfigDict()
    config.log.fit_verbose = 2
    config.log.tensorboard_fit_logs = True
    return config
