"""tf_evosyn: evolutionary synthesis of deep neural networks via synaptic-cluster-driven
genetic encoding (Shafiee & Wong 2016; Shafiee, Barshan & Wong 2017), for TensorFlow/Keras 2.

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads (TF-MOT and keras-cv
need Keras 2); import ``tf_evosyn`` before ``tensorflow`` in your own code.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tf_evosyn.alignment import ChannelAlignment  # noqa: E402
from tf_evosyn.cluster_floor import ClusterFloor  # noqa: E402
from tf_evosyn.compaction import compact  # noqa: E402
from tf_evosyn.compaction_report import compaction_report, format_report  # noqa: E402
from tf_evosyn.convert import clone_with_weights, evolvability_report, evolvable  # noqa: E402
from tf_evosyn.dependency import analyze  # noqa: E402
from tf_evosyn.environment import (  # noqa: E402
    ConstantFactor,
    EnvironmentalFactor,
    LayerBudget,
    SynapseBudget,
)
from tf_evosyn.evolution import Evolution  # noqa: E402
from tf_evosyn.export import export_model  # noqa: E402
from tf_evosyn.flops_budget import FlopsBudget  # noqa: E402
from tf_evosyn.heredity import Heredity  # noqa: E402
from tf_evosyn.latency_budget import LatencyBudget  # noqa: E402
from tf_evosyn.layers import (  # noqa: E402
    EvoConv1D,
    EvoConv2D,
    EvoDense,
    EvoDepthwiseConv2D,
    EvoSeparableConv2D,
    evolvable_layers,
)
from tf_evosyn.lineage import Lineage  # noqa: E402
from tf_evosyn.lineage_report import plot_lineage, summary_table  # noqa: E402
from tf_evosyn.measures import count_living  # noqa: E402
from tf_evosyn.model_io import load_model, save_model  # noqa: E402
from tf_evosyn.settings import EvolutionSettings  # noqa: E402
from tf_evosyn.synthesis import compute_heredity, synthesize  # noqa: E402
from tf_evosyn.tasks import ClassificationTask, DetectionTask, Evaluation, Task  # noqa: E402

# Imported eagerly so that TF-MOT models saved with KeepMasks/EvolutionarySchedule load.
from tf_evosyn.tfmot_interop import KeepMasks, from_tfmot, to_tfmot  # noqa: E402
from tf_evosyn.tfmot_schedule import (  # noqa: E402
    EvolutionaryPruningCallback,
    EvolutionarySchedule,
    prune_with_evolution,
)

__version__ = "0.1.0"

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
