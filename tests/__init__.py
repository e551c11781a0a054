"""The test suite, one folder per tf_evosyn subpackage (and per other top-level folder tested).

Every folder is a package, so test modules get unique dotted names (tests.core.test_x) even
when two folders hold files of the same name; pyproject's ``pythonpath = ["tests"]`` keeps
``from helpers import ...`` working from every folder.
"""
