"""Files on any TensorFlow filesystem: paths, atomic JSON/text writes, model save/load."""
