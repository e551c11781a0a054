"""One rule per layer kind, in one registry (see :mod:`tf_evosyn.core.kinds.base`).

Each module of this package is one kind family: its evolvable twins and its
:class:`~tf_evosyn.core.kinds.base.LayerRule` objects, registered when the module is imported.
Every module here is imported below (in name order), so adding a layer kind is one new module
(plus its test): nothing else has to list it. Import the rules through this package
(``from tf_evosyn.core.kinds import rule_for``) so that every kind is registered.
"""

from __future__ import annotations

import importlib
import pkgutil

from tf_evosyn.core.kinds.base import (
    BARRIER,
    DEPTHWISE,
    GROUPED,
    PRODUCER,
    LayerRule,
    latency_rule,
    nearest_rule,
    positions,
    register,
    rule_for,
    rules,
)

__all__ = [
    "BARRIER",
    "DEPTHWISE",
    "GROUPED",
    "PRODUCER",
    "LayerRule",
    "evolvable_types",
    "latency_rule",
    "nearest_rule",
    "positions",
    "register",
    "rule_for",
    "rules",
    "twins",
]

KIND_MODULES = tuple(
    sorted(info.name for info in pkgutil.iter_modules(__path__) if info.name != "base")
)
for _name in KIND_MODULES:  # registers each family's rules (a module-level discovery)
    importlib.import_module(f"{__name__}.{_name}")


def twins() -> dict[type, type]:
    """Plain Keras layer type -> its evolvable twin, for every rule that has one."""
    return {rule.plain: rule.twin for rule in rules() if rule.twin is not None}


def evolvable_types() -> tuple[type, ...]:
    """Every evolvable twin class, in registration order."""
    return tuple(twins().values())
