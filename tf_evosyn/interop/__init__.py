"""Interoperability with the tools a practitioner compares evolution with: TF-MOT (evolvable
masks as TF-MOT pruning, evolution as a schedule) and L1-norm filter pruning (Li et al. 2017),
the structured baseline, on the project's masks, coupling, compaction and MACs count."""

from tf_evosyn.interop.filter_pruning import (
    LI_RESNET56_SENSITIVE,
    FilterPruning,
    PrunableFamily,
    filter_l1_norms,
    prunable_families,
    prune_filters,
    prune_to_macs,
)

__all__ = [
    "LI_RESNET56_SENSITIVE",
    "FilterPruning",
    "PrunableFamily",
    "filter_l1_norms",
    "prunable_families",
    "prune_filters",
    "prune_to_macs",
]
