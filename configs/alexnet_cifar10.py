"""The papers' "AlexNet" on CIFAR-10: Caffe's cifar10_full network and solver, then evolved.

    evosyn-classify --config=configs/alexnet_cifar10.py --workdir=runs/alexnet_cifar10
    # from TFDS instead of local python batches, on all local GPUs:
    evosyn-classify --config=configs/alexnet_cifar10.py --workdir=runs/alexnet_cifar10 \
        --strategy=mirrored --config.data.source=tfds

Ancestor recipe: Caffe's ``examples/cifar10`` "full" model (Krizhevsky's cuda-convnet
layers-18pct; see tf_evosyn/models/alexnet_cifar.py) trained as ``train_full.sh`` does with
``cifar10_full_solver.prototxt`` and its ``_lr1``/``_lr2`` continuations: SGD with momentum 0.9,
weight decay 0.004 (fc: x250), batch 100, learning rate 0.001 for 60k iterations, 0.0001 for 5k
more and 0.00001 for the last 5k (70k in all). At batch 100 on the 50,000 training images an
epoch is 500 iterations: 140 epochs with the rate divided by 10 at epochs 120 and 130. Caffe's
network reaches ~81-82% test accuracy with this recipe.

Differences from Caffe: Caffe subtracts the per-pixel mean *image* from raw 0-255 pixels; here
the per-channel mean is subtracted from raw 0-255 pixels (``data.normalize_style='caffe'``), no
augmentation, as in Caffe. Do not switch to the [0, 1] standardised inputs the ResNet config uses:
with ~64x smaller inputs, Caffe's initialisation (conv1 std 1e-4) and rate 0.001 leave the
logits ~0 and nothing is learnt for many epochs (measured on the subset: 10.4% after 10 epochs,
vs. 41% with Caffe-scaled inputs). The within-channel LRN layers are left out (the model's
default, see its docstring), because the channel analysis treats LRN as a barrier.

Evolution (ours, not the papers'): offspring inherit their parent's surviving weights and are
fine-tuned for 10 epochs with SGD (rate 0.001, Caffe's base rate, momentum 0.9, cosine decay
within the generation). Environment ``layer_budget``: each layer keeps 85% of its clusters and
65% of its synapses per generation in expectation; conv1 (32 filters of 75 synapses, which feed
everything) keeps 95%/85%. Not yet tuned on full CIFAR-10 (no GPU here).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "classification"  # evosyn-classify (the task registry: tf_evosyn.runs.registry)
    config.seed = 0
    config.deterministic = True  # same seed -> same lineage on the same machine; False is faster

    config.model = ml_collections.ConfigDict()
    config.model.name = "alexnet_cifar"
    # Caffe's solver weight_decay (L2 on conv kernels, x250 on fc; biases not decayed).
    config.model.weight_decay = 0.004

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
    config.data.augment = False  # Caffe's cifar10_full does not augment
    config.data.normalize = True
    # caffe: raw 0-255 pixels minus the per-channel mean, no division (Caffe subtracts the mean
    # image); standardize ((x - mean) / std in [0, 1] units) does not train with this recipe:
    # Caffe's init (conv1 std 1e-4) on ~64x smaller inputs leaves the logits ~0 for epochs.
    config.data.normalize_style = "caffe"

    # Ancestor training: cifar10_full_solver (+ _lr1, _lr2).
    config.train = ml_collections.ConfigDict()
    config.train.epochs = 140  # 70k iterations at 500 per epoch
    config.train.batch_size = 100
    config.train.optimizer = "sgd"
    config.train.learning_rate = 0.001
    config.train.momentum = 0.9
    config.train.nesterov = False
    config.train.schedule = "piecewise"  # constant | cosine | piecewise
    config.train.boundaries_epochs = (120, 130)  # iterations 60k and 65k
    config.train.decay_factor = 0.1
    config.train.warmup_epochs = 0.0  # Caffe uses none
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
    config.evolution.learning_rate = 0.001
    config.evolution.momentum = 0.9
    config.evolution.nesterov = False
    config.evolution.schedule = "cosine"  # decays over each generation's fine-tuning
    config.evolution.boundaries_epochs = (5, 8)  # only used by schedule = piecewise
    config.evolution.decay_factor = 0.1
    config.evolution.warmup_epochs = 0.0
    config.evolution.environment = "layer_budget"  # constant | synapse_budget | layer_budget
    # layer_budget: per layer keep cluster_budget_fraction of the clusters and budget_fraction
    # of the synapses each generation; layer_budgets overrides both per layer.
    config.evolution.cluster_budget_fraction = 0.85
    config.evolution.budget_fraction = 0.65
    config.evolution.layer_budgets = ml_collections.ConfigDict(
        {
            "conv1": {"cluster_fraction": 0.95, "synapse_fraction": 0.85},
            "conv2": {"cluster_fraction": 0.85, "synapse_fraction": 0.65},
            "conv3": {"cluster_fraction": 0.85, "synapse_fraction": 0.65},
        }
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
