"""Whole experiments from a config, one module per task (what the absl binaries run).

``registry`` maps ``config.task`` to the task's run and export functions; ``classification``
and ``detection`` are the two tasks; ``evolve`` is the loop they share; ``common`` the run
directory, strategy and selection helpers; ``app`` the binaries' flags and main.
"""
