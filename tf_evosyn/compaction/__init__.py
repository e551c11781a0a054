"""Physical compaction: dead clusters and synapses removed from a model, exactly."""
