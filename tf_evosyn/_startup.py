"""A quiet first screen for the commands: TensorFlow's start-up noise kept out of the way.

On a CPU machine TensorFlow opens with ``failed call to cuInit``, oneDNN notices and
``NodeDef mentions attribute ...`` lines that users read as failures. When the process is one of
our commands (``evosyn-*`` or ``python -m tf_evosyn.bin.*``) and neither ``--verbose`` nor
``TF_CPP_MIN_LOG_LEVEL`` was given, TensorFlow is imported with its C++ log level at 3 (fatal
only) and with file descriptor 2 held aside while it loads: the lines it prints before its own
logging starts ignore the level. Anything written there is replayed if the import fails, so a
broken install still explains itself. Library users (notebooks, scripts) see TensorFlow as is.
"""

from __future__ import annotations

import os
import sys
import tempfile

_COMMAND_PREFIX = "evosyn-"
_COMMAND_PACKAGE = "tf_evosyn.bin."
_VERBOSE_FLAG = "--verbose"


def is_command(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """True when this process runs one of tf_evosyn's command-line binaries."""
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if argv and os.path.basename(argv[0]).startswith(_COMMAND_PREFIX):
        return True
    for flag, module in zip(orig_argv, orig_argv[1:], strict=False):
        if flag == "-m" and module.startswith(_COMMAND_PACKAGE):
            return True
    return False


def wants_quiet(argv: list[str] | None = None, environ: dict | None = None) -> bool:
    """Quiet unless the user asked for TensorFlow's log (``--verbose`` or their own level)."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    verbose = any(arg in (_VERBOSE_FLAG, f"{_VERBOSE_FLAG}=true", "--verbose=1") for arg in argv)
    return is_command(argv) and not verbose and "TF_CPP_MIN_LOG_LEVEL" not in environ


def import_tensorflow() -> None:
    """Import TensorFlow, quietly for a command (see the module docstring)."""
    if "tensorflow" in sys.modules or not wants_quiet():
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
