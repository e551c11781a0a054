"""absl binaries of tf_evosyn.

Every command takes ``--verbose``: TensorFlow's start-up and C++ log lines, hidden by default
(see tf_evosyn/_startup.py, which reads the flag from argv before TensorFlow loads).
"""

from absl import flags

flags.DEFINE_boolean(
    "verbose",
    False,
    "Show TensorFlow's start-up and C++ log lines (CUDA probing, oneDNN notices), hidden by "
    "default; setting TF_CPP_MIN_LOG_LEVEL yourself also shows them at your level.",
)
