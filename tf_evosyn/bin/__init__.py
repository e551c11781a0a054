"""absl binaries of tf_evosyn."""
