"""The CIFAR-10 benchmark's per-model configs: the recipes (configs/resnet56_cifar10.py,
configs/alexnet_cifar10.py), the short-budget adaptation, and parsing of the per-model flags
(``N`` or ``model:N`` items, ``model:key=value`` overrides)."""

from __future__ import annotations

import ast
from pathlib import Path

import ml_collections

REPO = Path(__file__).resolve().parent.parent
RECIPES = {
    "resnet56": REPO / "configs" / "resnet56_cifar10.py",
    "alexnet_cifar": REPO / "configs" / "alexnet_cifar10.py",
}
# ResNet-56 on the subset, measured (see the module docstring): the He et al. rate 0.1 stays at
# chance for 10 epochs (25 steps each), 0.02 learns; the offspring's fine-tuning rate keeps the
# recipe's ratio (a tenth of the ancestor's peak rate).
SHORT_BUDGET_SETTINGS = (
    "resnet56:train.learning_rate=0.02",
    "resnet56:evolution.learning_rate=0.002",
)


class FlagError(ValueError):
    """A flag value that cannot work (checked before any training)."""


def parse_per_model(name: str, items: list[str], models: list[str]) -> dict[str, int]:
    """``["4"]`` or ``["resnet56:4", "alexnet_cifar:30"]`` -> {model: int} for ``models``."""
    values: dict[str, int] = {}
    for item in items:
        key, _, number = item.rpartition(":")
        try:
            value = int(number)
        except ValueError:
            raise FlagError(f"--{name}: {item!r} is not N or model:N.") from None
        if value < 0:
            raise FlagError(f"--{name}: {item!r} must be >= 0.")
        if key and key not in RECIPES:
            raise FlagError(f"--{name}: unknown model {key!r}; use one of {sorted(RECIPES)}.")
        for model in [key] if key else models:
            values[model] = value
    missing = [m for m in models if m not in values]
    if missing:
        raise FlagError(f"--{name} gives no value for {', '.join(missing)}.")
    return {m: values[m] for m in models}


def parse_settings(items: list[str], models: list[str]) -> dict[str, list[tuple[str, object]]]:
    """``["resnet56:train.learning_rate=0.05"]`` -> {model: [(dotted key, value)]}."""
    settings: dict[str, list[tuple[str, object]]] = {m: [] for m in models}
    for item in items:
        if item.strip().lower() == "none":
            continue
        model, colon, assignment = item.partition(":")
        key, equals, text = assignment.partition("=")
        if not colon or not equals or not key:
            raise FlagError(f"--set={item!r}: use model:section.key=value.")
        if model not in RECIPES:
            raise FlagError(f"--set={item!r}: unknown model {model!r}; use {sorted(RECIPES)}.")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare string, e.g. schedule=cosine
        if model in settings:  # settings for models not benchmarked are ignored
            settings[model].append((key, value))
    return settings


def apply_setting(config: ml_collections.ConfigDict, key: str, value) -> None:
    *path, name = key.split(".")
    node = config
    for part in path:
        if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
            raise FlagError(f"--set: {key!r} is not a key of the config.")
        node = node[part]
    if name not in node:
        raise FlagError(f"--set: {key!r} is not a key of the config.")
    try:
        node[name] = value
    except TypeError as error:  # ConfigDict keeps each key's type
        raise FlagError(f"--set: {key}={value!r}: {error}") from None


def load_recipe(model: str) -> ml_collections.ConfigDict:
    from tf_evosyn.bin.config_cli import load_config_file

    return load_config_file(str(RECIPES[model]))


def model_config(
    model: str,
    shared: ml_collections.ConfigDict,
    ancestor_epochs: int,
    epochs_per_gen: int,
    evolution: dict,
    settings: list[tuple[str, object]] = (),
    scale_schedule: bool = True,
) -> ml_collections.ConfigDict:
    """The model's recipe with the benchmark's data section, epochs and evolution settings.

    ``evolution``: generations, accuracy_tolerance, max_attempts and fit_verbose (the flags).
    """
    config = load_recipe(model)
    if shared.data.name != config.data.name and "validation_size" not in shared.data:
        # The recipe's held-out size is for its own dataset (5,000 of CIFAR-10's 50,000); on
        # another one (the 4,000-image subset) the dataset's default applies (data/validation.py).
        config.data.validation_size = None
    for key, value in shared.data.items():
        config.data[key] = value
    for key, value in shared.distribute.items():
        config.distribute[key] = value
    recipe_epochs = config.train.epochs
    config.train.epochs = ancestor_epochs
    if (
        scale_schedule
        and config.train.schedule == "piecewise"
        and 0 < ancestor_epochs < recipe_epochs
    ):
        ratio = ancestor_epochs / recipe_epochs
        config.train.boundaries_epochs = tuple(
            round(b * ratio, 4) for b in config.train.boundaries_epochs
        )
    config.evolution.generations = evolution["generations"]
    config.evolution.epochs_per_generation = epochs_per_gen
    config.evolution.accuracy_tolerance = evolution["accuracy_tolerance"]
    config.evolution.max_attempts = evolution["max_attempts"]
    config.log.fit_verbose = evolution["fit_verbose"]
    config.log.tensorboard_fit_logs = False
    for key, value in settings:
        apply_setting(config, key, value)
    return config
