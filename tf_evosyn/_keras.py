"""The one place tf_evosyn imports Keras.

TF-MOT 0.8 and keras-cv's Keras 2 backend need Keras 2 (``tf_keras``); ``TF_USE_LEGACY_KERAS``
must be set before TensorFlow is first imported, so this module sets it and every other module
imports ``keras`` from here. Never ``import keras`` (Keras 3) inside the library.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tf_evosyn._startup import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly when this process is one of the commands

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
