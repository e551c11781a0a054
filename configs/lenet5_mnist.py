"""LeNet-5 (Caffe variant) on MNIST: the papers' first experiment.

    evosyn-classify --config=configs/lenet5_mnist.py --workdir=runs/lenet5_mnist
Override any knob, e.g. --config.evolution.generations=5 --config.data.data_dir=/data/mnist
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "classification"  # evosyn-classify (the task registry: tf_evosyn.runs.registry)
    config.seed = 0
    config.deterministic = True  # same seed -> same lineage on the same machine

    # linear: Caffe's LeNet-5 (no activation after the convolutions; the papers' ancestor).
    # relu: a ReLU after each convolution, as the PyTorch LeNet-5-Caffe of the published
    # compression results has (README, "LeNet-5 with ReLU convolutions").
    config.model = ml_collections.ConfigDict({"name": "lenet5", "conv_activation": "linear"})

    config.data = ml_collections.ConfigDict()
    config.data.name = "mnist"
    config.data.source = "auto"  # auto: local IDX files if data_dir or $EVOSYN_DATA_DIR, else TFDS
    config.data.data_dir = ""  # folder with the four MNIST IDX files
    config.data.tfds_data_dir = ""
    config.data.download = True  # let TFDS download when source resolves to tfds
    config.data.train_limit = 0  # use only the first N training examples (0 = all)
    config.data.test_limit = 0
    # Evolution decides on a validation split held out from the END of the training data
    # (never on the test split, which is only recorded): data/validation.py.
    config.data.validation_size = 5000
    # True shifts training digits by up to augment_pad pixels (zero fill), never mirrored. Off:
    # measured over a whole run it bought nothing (generation 14: 150.7x / 12.89x at 98.50% test,
    # against 151.6x / 14.15x at 98.56% without), though 10 more epochs of one 41-cluster
    # offspring gain 0.3 points with it.
    config.data.augment = False
    config.data.augment_pad = 2
    config.data.augment_flip = False

    # Ancestor training.
    config.train = ml_collections.ConfigDict()
    config.train.epochs = 10
    config.train.batch_size = 64
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.schedule = "cosine"  # constant | cosine (decay to 0 over the training)
    config.train.ancestor_path = ""  # a trained model to start from instead of training one
    config.train.mixed_precision = "float32"  # float32 | mixed_float16 | mixed_bfloat16
    config.train.jit_compile = False  # XLA train/predict steps; needs deterministic = False

    # Offspring synthesis and fine-tuning.
    config.evolution = ml_collections.ConfigDict()
    config.evolution.generations = 14
    # 1 epoch while the network is large, + round(this * log2(parent's cluster efficiency))
    # epochs as it shrinks, at most max_epochs_per_generation (0 = no cap): 1, 2, 3, 4, 5 epochs
    # at 1x, 2x, 4x, 8x, 16x fewer clusters (a large offspring recovers in one epoch; a small one
    # needs the epochs). Against 3 + 0.75 per doubling the evolution costs ~half the time at
    # the same accuracy at 14x clusters (README, LeNet-5 benchmark).
    config.evolution.epochs_per_generation = 1
    config.evolution.epochs_per_doubling = 1.0
    config.evolution.max_epochs_per_generation = 5
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
    # The global batch offspring fine-tune on (0: train.batch_size). A small offspring's epoch
    # is mostly per-step cost, so a larger batch (with a larger rate) halves it.
    config.evolution.batch_size = 0
    config.evolution.optimizer = "adam"
    config.evolution.learning_rate = 1e-3
    config.evolution.schedule = "cosine"  # decays over each generation's fine-tuning
    # Per-layer resource targets (README, "Benchmarks"), set so that 12-14 generations reach
    # about Bayesian Compression's 5-10-16 architecture: each generation conv1 keeps 90.4% of
    # its filters and synapses, conv2 87.4% of its filters and 80% of its synapses, fc1 75% of
    # its units and 64% of its synapses (fc2's units are the classes: protected; its synapses
    # keep budget_fraction). A re-draw after a rejection takes half the step (retry_relief).
    # The papers' constant 0.8/1.0 loses ~80% of the synapses per generation and collapses by
    # generation 2.
    config.evolution.environment = "layer_budget"  # constant | synapse_budget | layer_budget
    config.evolution.cluster_factor = 0.9  # constant; synapse_budget: the non-budget level
    config.evolution.synapse_factor = 1.0
    config.evolution.budget_fraction = 0.76  # synapse_budget / layer_budget: synapses kept
    config.evolution.budget_level = "synapse"  # synapse_budget: cluster | synapse | both
    config.evolution.budget_max_factor = 5.0  # > 1: a generous environment (probabilities clip)
    config.evolution.cluster_budget_fraction = 0.8  # layer_budget: clusters kept per generation
    config.evolution.layer_budgets = ml_collections.ConfigDict(  # layer_budget: per layer
        {
            "conv1": {"cluster_fraction": 0.904, "synapse_fraction": 0.904},
            "conv2": {"cluster_fraction": 0.874, "synapse_fraction": 0.8},
            "fc1": {"cluster_fraction": 0.75, "synapse_fraction": 0.64},
        }
    )
    # layer_budget: re-draw k after a rejection keeps fraction ** (1 - retry_relief) ** k.
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
    # > 0: offspring also learn the ancestor's soft predictions at this temperature.
    config.evolution.distill_temperature = 4.0
    config.evolution.distill_alpha = 0.1  # weight of the label loss against the soft targets
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
    config.evolution.compact_offspring = True
    config.evolution.selection = "most_efficient"  # most_efficient | most_accurate

    # Where it runs (may change when a run is resumed). train.batch_size is the global batch:
    # each replica gets batch_size / replicas. Or --strategy=... on the command line.
    config.distribute = ml_collections.ConfigDict()
    config.distribute.strategy = "default"  # default | mirrored | multi_worker_mirrored | tpu
    config.distribute.tpu_address = ""  # tpu: TPU name or grpc://host:port ('local' on a TPU VM)
    config.distribute.num_cpu_devices = 0  # mirrored without GPU: split the CPU into N devices
    # multi_worker_mirrored: a collective op that waits longer fails the run (a crashed worker
    # is found sooner, by heartbeats); restart every worker to resume.
    config.distribute.collective_timeout_seconds = 600.0

    config.log = ml_collections.ConfigDict()
    config.log.fit_verbose = 2
    config.log.tensorboard_fit_logs = True
    return config
