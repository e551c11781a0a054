"""Command-line config errors as one line, for every binary that takes ``--config=FILE``.

ml_collections refuses a misspelt override (``--config.evolution.genrations=3``) with an
``AttributeError`` raised from inside absl's flag parsing, so the user sees a traceback. The
binaries hand :func:`flags_parser` to ``absl.app.run`` instead of absl's default: it parses as
usual and, when an override fails, exits with one line that names the key and the closest real
keys (``difflib``), like every other config error.

Run on its own it checks a config and its overrides without training anything::

    python -m tf_evosyn.bin.config_cli --config=configs/lenet5_mnist.py --config.seed=3
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags

_CONFIG_FLAG = "config"


def config_keys(tree: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a ConfigDict or dict (sections and leaves), e.g. ``evolution``,
    ``evolution.generations``."""
    if hasattr(tree, "to_dict"):
        tree = tree.to_dict()
    keys = []
    for name, value in tree.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        if isinstance(value, dict) or hasattr(value, "to_dict"):
            keys.extend(config_keys(value, dotted + "."))
    return keys


def unknown_key_message(key: str, known: Iterable[str], flag: str = _CONFIG_FLAG) -> str:
    """``unknown config key 'a.b' (--config.a.b); did you mean 'a.c'?`` (or the valid keys)."""
    known = list(known)
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    same_depth = [k for k in known if k.count(".") == key.count(".")]
    siblings = [k for k in same_depth if parent and k.startswith(parent + ".")]
    matches = difflib.get_close_matches(key, same_depth, n=1, cutoff=0.6)
    if matches:
        hint = f"did you mean '{matches[0]}'?"
    elif siblings:
        hint = f"the keys of '{parent}' are: {', '.join(s.rsplit('.', 1)[1] for s in siblings)}."
    else:
        sections = [k for k in known if "." not in k]
        hint = f"the top-level keys are: {', '.join(sections)}."
    return f"unknown config key '{key}' (--{flag}.{key}); {hint}"


def _flag_value(argv: Sequence[str], name: str) -> str | None:
    """The last ``--name=value`` / ``--name value`` in argv, or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def override_keys(argv: Sequence[str], flag: str = _CONFIG_FLAG) -> list[str]:
    """Dotted keys of the ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) overrides."""
    prefix = f"--{flag}."
    return [arg[len(prefix) :].split("=", 1)[0] for arg in argv if arg.startswith(prefix)]


def load_config_file(spec: str) -> Any:
    """The config of ``path[:arg]`` as ml_collections loads it: ``get_config(arg)``."""
    path, *args = spec.split(":", 1)
    module_spec = importlib.util.spec_from_file_location("_evosyn_config_check", path)
    if module_spec is None or module_spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(*args)


def explain_parse_error(argv: Sequence[str], error: BaseException, flag: str = _CONFIG_FLAG) -> str:
    """One line saying why the flags in ``argv`` did not parse (names the key when it can)."""
    spec = _flag_value(argv, flag)
    if spec is None:
        return f"--{flag} is required (a config file, e.g. --{flag}=configs/lenet5_mnist.py)."
    if not Path(spec.split(":", 1)[0]).is_file():
        return f"--{flag}={spec}: no such config file."
    try:
        known = config_keys(load_config_file(spec))
    except Exception as load_error:  # the config file itself is broken
        return f"--{flag}={spec} could not be loaded: {type(load_error).__name__}: {load_error}"
    for key in override_keys(argv, flag):
        if key not in known:
            return unknown_key_message(key, known, flag)
    detail = " ".join(str(error).replace("\\n", " ").strip("'\"").split())
    return f"bad --{flag} override: {type(error).__name__}: {detail}"


def flags_parser(prog: str, flag: str = _CONFIG_FLAG) -> Callable[[list[str]], list[str]]:
    """A ``flags_parser`` for ``absl.app.run``: absl's parsing, config errors as one line.

    ``flags.Error`` (a malformed value, a missing required flag) keeps absl's message; the
    errors ml_collections raises for unknown keys become ``unknown config key ...``. Either
    way the program exits with status 1 and one line ``{prog}: error: ...``.
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:  # absl's own message is already one line
            sys.exit(f"{prog}: error: {error} (--helpfull lists the flags)")
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            sys.exit(f"{prog}: error: {explain_parse_error(argv[1:], error, flag)}")

    return parse


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from tf_evosyn.runs.config_checks import validate_config
    from tf_evosyn.runs.errors import ConfigError

    config = flags.FLAGS[_CONFIG_FLAG].value
    try:
        validate_config(config)
    except ConfigError as error:
        sys.exit(f"evosyn-config: error: {error}")
    print(json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str))


def run() -> None:
    """Check a config file and its overrides; print the resolved config as JSON."""
    from ml_collections import config_flags

    import tf_evosyn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    config_flags.DEFINE_config_file(_CONFIG_FLAG, None, "Experiment config file.", lock_config=True)
    flags.mark_flags_as_required([_CONFIG_FLAG])
    app.run(main, flags_parser=flags_parser("evosyn-config"))


if __name__ == "__main__":
    run()
