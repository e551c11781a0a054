"""Environmental factor models F(E): constant factors, synapse/layer budgets, FLOPs and
latency budgets, channel alignment and cluster floors; ``register`` adds your own.
"""

from tf_evosyn.environments.base import (
    build,
    get,
    register,
    registered_names,
    serialize,
    snake_name,
)

__all__ = ["build", "get", "register", "registered_names", "serialize", "snake_name"]
