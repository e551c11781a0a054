"""The one error a bad config raises, and the number check, shared by the config checks."""

import math


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
