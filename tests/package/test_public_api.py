"""The public API: one import, ``tf_evosyn``, holds what a user needs, and it works as one."""

import numpy as np

import tf_evosyn
from tf_evosyn._keras import keras

PUBLIC = {
    # the loop
    "Evolution",
    "EvolutionSettings",
    "Heredity",
    "Task",
    "ClassificationTask",
    "DetectionTask",
    "Evaluation",
    "Lineage",
    "summary_table",
    "plot_lineage",
    # environments
    "EnvironmentalFactor",
    "ConstantFactor",
    "SynapseBudget",
    "LayerBudget",
    "FlopsBudget",
    "LatencyBudget",
    "ChannelAlignment",
    "ClusterFloor",
    # networks
    "evolvable",
    "evolvability_report",
    "evolvable_layers",
    "clone_with_weights",
    "synthesize",
    "compute_heredity",
    "analyze",
    "compact",
    "compaction_report",
    "format_report",
    "count_living",
    "load_model",
    "save_model",
    "export_model",
    # evolvable layers
    "EvoConv1D",
    "EvoConv2D",
    "EvoDense",
    "EvoDepthwiseConv2D",
    "EvoSeparableConv2D",
    # TF-MOT interop
    "to_tfmot",
    "from_tfmot",
    "KeepMasks",
    "EvolutionarySchedule",
    "EvolutionaryPruningCallback",
    "prune_with_evolution",
}


def test_the_public_api_is_exactly_the_documented_list():
    assert set(tf_evosyn.__all__) == PUBLIC
    missing = [name for name in PUBLIC if not hasattr(tf_evosyn, name)]
    assert not missing


def test_public_names_alone_evolve_compact_and_report_a_model():
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="fc")(x))
    parent = tf_evosyn.evolvable(model)
    environment = tf_evosyn.LayerBudget(cluster_fraction=0.5, synapse_fraction=0.5)
    heredity = tf_evosyn.Heredity(synapse_sharpness=3.0, cluster_sharpness=3.0)
    offspring, record = tf_evosyn.synthesize(parent, environment, seed=1, heredity=heredity)
    small = tf_evosyn.compact(offspring)
    living = {layer.name: layer.clusters for layer in tf_evosyn.count_living(offspring).layers}
    assert small.get_layer("conv").filters == living["conv"] < 8
    images = np.random.default_rng(0).normal(size=(3, 6, 6, 1)).astype(np.float32)
    np.testing.assert_allclose(small(images), offspring(images), atol=1e-5)
    assert "conv" in tf_evosyn.format_report(tf_evosyn.compaction_report(offspring, small))
    assert set(record.factors) == {"conv", "fc"}
    assert tf_evosyn.analyze(parent) is not None
