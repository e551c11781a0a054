"""One import for running experiments from Python (benchmarks, notebooks, tests).

The pieces live in modules named after their job:

* :mod:`tf_evosyn.runs.config_checks`: config validation (:class:`ConfigError`) and the evolution
  settings a config describes;
* :mod:`tf_evosyn.loop.recipes`: optimizers, learning-rate schedules, the compile function;
* :mod:`tf_evosyn.runs.common`: run-directory config/runtime records, strategy and precision;
* :mod:`tf_evosyn.runs.classification`: :func:`run_classification`.
"""

from tf_evosyn.loop.recipes import (
    OPTIMIZERS,
    RECIPE_DEFAULTS,
    SCHEDULES,
    LinearWarmup,
    learning_rate_schedule,
    make_compile_fn,
    make_optimizer,
    piecewise_boundary_steps,
)
from tf_evosyn.runs.classification import run_classification
from tf_evosyn.runs.common import RUNTIME_FILENAME, prepare_workdir, write_runtime
from tf_evosyn.runs.config_checks import (
    ENVIRONMENTS,
    ConfigError,
    build_environment,
    build_settings,
    model_kwargs,
    validate_config,
)
from tf_evosyn.runs.scale import SCALE_DEFAULTS, ScaleSettings, scale_settings

__all__ = [
    "ENVIRONMENTS",
    "OPTIMIZERS",
    "RECIPE_DEFAULTS",
    "RUNTIME_FILENAME",
    "SCALE_DEFAULTS",
    "SCHEDULES",
    "ConfigError",
    "LinearWarmup",
    "ScaleSettings",
    "build_environment",
    "build_settings",
    "learning_rate_schedule",
    "make_compile_fn",
    "make_optimizer",
    "model_kwargs",
    "piecewise_boundary_steps",
    "prepare_workdir",
    "run_classification",
    "scale_settings",
    "validate_config",
    "write_runtime",
]
