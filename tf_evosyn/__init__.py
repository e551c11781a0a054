"""tf_evosyn: evolutionary synthesis of deep neural networks via synaptic-cluster-driven
genetic encoding (Shafiee & Wong 2016; Shafiee, Barshan & Wong 2017), for TensorFlow/Keras 2.

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads (TF-MOT and keras-cv
need Keras 2); import ``tf_evosyn`` before ``tensorflow`` in your own code.

The public API is this module's ``__all__`` (and, for the layers above, each subpackage's
``__all__``: ``tf_evosyn.environments.register``, ``tf_evosyn.detection.predict``, ...).
Everything else is the implementation, private by name: a module-level name that no other
module uses starts with an underscore (tests/package/test_private_names.py keeps it so). The
implementation sits in layers that import only downwards: each subpackage below imports only
the ones listed above it (tests/package/test_import_cycles.py checks this order):

    storage/       files on any TF filesystem: fs, atomic writes (io_utils)
    models/        plain Keras networks and their custom layers (LRN, PadShortcut), importing
                   no other tf_evosyn layer: LeNet-5, AlexNet, ResNet, GoogLeNet, DetectNet
                   (and on MobileNetV2), a row-reading LSTM (sequence)
    core/          the genetic encoding: Evo layers (evolvable_base, layers, recurrent), one
                   rule per layer kind (kinds/: a new kind is one file), heredity,
                   conversion of Keras models (convert, flatten, trace_blocks,
                   trace_checks), living counts, saving and loading (model_io)
    graph/         channel dependencies of a model: dependency analysis, coupling (and the
                   kill/revive of a coupled group's masks), grouping
    hardware/      MACs (flops), measured TFLite latency, latency models
    environments/  F(E): base (constant, synapse and layer budgets, ``register``), FLOPs and
                   latency budgets, channel alignment, cluster floors
    synthesis/     breeding: an offspring from one parent (offspring) or several (mating)
    compaction/    physical removal of dead clusters (plan), its report, evolvable compaction
    interop/       TF-MOT: masks as pruning wrappers (tfmot), evolution as a schedule; L1-norm
                   filter pruning (Li et al. 2017), the structured baseline
    data/          datasets: MNIST IDX, CIFAR-10, KITTI, npz, TFDS, pipelines, validation
    detection/     DetectNet's targets, losses, clustering, KITTI evaluation, inference
    tasks/         what the loop asks of a task: classification, detection
    loop/          Evolution, settings, fine-tuning, distillation, candidates, population
                   (and its workers: N jobs share a generation's candidates), run directory
                   (and its lock and format), lineage and its reports, stop targets, recipes,
                   strategies
    export/        SavedModel/TFLite artifacts of a run (artifacts) and which network (target)
    runs/          a whole experiment from a config: config and scale checks, the task registry, the
                   classification and detection runs, the binaries' shared main (app)
    bin/           the commands: evosyn-classify, -detect, -export, -config, -predict

Beside them: ``_keras`` (TensorFlow and Keras 2, imported quietly by ``_startup``) below all, and
``zoo``/``zoo_models`` (the Keras Applications, keras-cv and user-model coverage benchmark's
networks) above the layers they evolve.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tf_evosyn._version import __version__ as __version__  # noqa: E402
from tf_evosyn.compaction.plan import compact  # noqa: E402
from tf_evosyn.compaction.report import compaction_report, format_report  # noqa: E402
from tf_evosyn.core.convert import clone_with_weights, evolvability_report, evolvable  # noqa: E402
from tf_evosyn.core.heredity import Heredity  # noqa: E402
from tf_evosyn.core.layers import (  # noqa: E402
    EvoConv1D,
    EvoConv2D,
    EvoDense,
    EvoDepthwiseConv2D,
    EvoSeparableConv2D,
    evolvable_layers,
)
from tf_evosyn.core.measures import count_living  # noqa: E402
from tf_evosyn.core.model_io import load_model, save_model  # noqa: E402
from tf_evosyn.environments.alignment import ChannelAlignment  # noqa: E402
from tf_evosyn.environments.base import (  # noqa: E402
    ConstantFactor,
    EnvironmentalFactor,
    LayerBudget,
    SynapseBudget,
)
from tf_evosyn.environments.cluster_floor import ClusterFloor  # noqa: E402
from tf_evosyn.environments.flops_budget import FlopsBudget  # noqa: E402
from tf_evosyn.environments.latency_budget import LatencyBudget  # noqa: E402
from tf_evosyn.export.artifacts import export_model  # noqa: E402
from tf_evosyn.graph.dependency import analyze  # noqa: E402

# Imported eagerly so that TF-MOT models saved with KeepMasks/EvolutionarySchedule load.
from tf_evosyn.interop.tfmot import KeepMasks, from_tfmot, to_tfmot  # noqa: E402
from tf_evosyn.interop.tfmot_schedule import (  # noqa: E402
    EvolutionaryPruningCallback,
    EvolutionarySchedule,
    prune_with_evolution,
)
from tf_evosyn.loop.evolution import Evolution  # noqa: E402
from tf_evosyn.loop.lineage import Lineage  # noqa: E402
from tf_evosyn.loop.lineage_report import plot_lineage, summary_table  # noqa: E402
from tf_evosyn.loop.settings import EvolutionSettings  # noqa: E402
from tf_evosyn.synthesis.offspring import compute_heredity, synthesize  # noqa: E402
from tf_evosyn.tasks import ClassificationTask, DetectionTask, Evaluation, Task  # noqa: E402

__all__ = [
    "ChannelAlignment",
    "ClassificationTask",
    "ClusterFloor",
    "ConstantFactor",
    "DetectionTask",
    "EnvironmentalFactor",
    "Evaluation",
    "EvoConv1D",
    "EvoConv2D",
    "EvoDense",
    "EvoDepthwiseConv2D",
    "EvoSeparableConv2D",
    "Evolution",
    "EvolutionSettings",
    "EvolutionaryPruningCallback",
    "EvolutionarySchedule",
    "FlopsBudget",
    "Heredity",
    "KeepMasks",
    "LatencyBudget",
    "LayerBudget",
    "Lineage",
    "SynapseBudget",
    "Task",
    "analyze",
    "clone_with_weights",
    "compact",
    "compaction_report",
    "compute_heredity",
    "count_living",
    "evolvability_report",
    "evolvable",
    "evolvable_layers",
    "export_model",
    "format_report",
    "from_tfmot",
    "load_model",
    "plot_lineage",
    "prune_with_evolution",
    "save_model",
    "summary_table",
    "synthesize",
    "to_tfmot",
]
