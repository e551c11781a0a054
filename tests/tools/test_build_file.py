"""The root BUILD file lists every module, config, test and binary, and nothing stale.

BUILD is read by tools/check_build.py (a literal-only ``ast`` parser), so no Bazel is needed;
only the last test runs ``bazel query //...``, and only if a ``bazel`` executable is on PATH.
To see everything that is missing, with snippets to paste: ``python tools/check_build.py``.
"""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HINT = "\n(`python tools/check_build.py` prints BUILD snippets for missing targets)"


def _load_checker():
    path = REPO_ROOT / "tools" / "check_build.py"
    spec = importlib.util.spec_from_file_location("check_build", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while executing
    spec.loader.exec_module(module)
    return module


cb = _load_checker()


@pytest.fixture(scope="module")
def rules():
    return cb.load_rules(REPO_ROOT)


def _report(title: str, items: list[str]) -> str:
    return f"{title}:\n" + "\n".join(f"  {item}" for item in items) + HINT


def test_build_has_the_library_target(rules):
    lib = cb.library_rule(rules)
    assert lib is not None, "BUILD has no py_library(name = 'tf_evosyn')"
    assert lib.attrs.get("srcs"), "py_library :tf_evosyn has no srcs"


def test_library_srcs_list_every_module(rules):
    missing = cb.missing_library_srcs(rules, REPO_ROOT)
    assert not missing, _report("Add to py_library :tf_evosyn srcs in BUILD", missing)


def test_library_data_lists_every_config(rules):
    missing = cb.missing_library_data(rules, REPO_ROOT)
    assert not missing, _report("Add to py_library :tf_evosyn data in BUILD", missing)


def test_every_test_file_has_a_py_test(rules):
    problems = cb.py_test_problems(rules, REPO_ROOT)
    assert not problems, _report("Test files without a correct py_test in BUILD", problems)


def test_slow_tags_follow_pytest_markers(rules):
    problems = cb.slow_tag_problems(rules, REPO_ROOT)
    assert not problems, _report("Fix py_test tags in BUILD", problems)


def test_every_bin_module_has_a_py_binary(rules):
    problems = cb.binary_problems(rules, REPO_ROOT)
    assert not problems, _report("bin/ modules without a py_binary in BUILD", problems)


def test_no_stale_entries(rules):
    stale = cb.stale_entries(rules, REPO_ROOT)
    assert not stale, _report("Stale entries in BUILD (remove or fix them)", stale)


def test_checker_reports_missing_and_stale_files(tmp_path):
    """The checks are not vacuous: a tree with an unlisted module, test and binary fails them."""
    for rel in (
        "tf_evosyn/__init__.py",
        "tf_evosyn/new_module.py",
        "tf_evosyn/bin/__init__.py",
        "tf_evosyn/bin/new_tool.py",
        "configs/new_config.py",
        "tests/conftest.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "tests" / "test_new.py").write_text(
        "import pytest\n\n@pytest.mark.slow\ndef test_x():\n    pass\n"
    )
    # tests/ mirrors the package: test files in subfolders count, and a py_test name is a stem
    for rel in ("tests/core/test_nested.py", "tests/core/test_twin.py", "tests/loop/test_twin.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("def test_x():\n    pass\n")
    (tmp_path / "BUILD").write_text(
        'py_library(name = "tf_evosyn", srcs = ["tf_evosyn/__init__.py", "tf_evosyn/gone.py"])\n'
    )
    problems = cb.all_problems(tmp_path)
    flat = "\n".join(item for items in problems.values() for item in items)
    for expected in (
        "tf_evosyn/new_module.py",
        "tf_evosyn/bin/__init__.py",
        "configs/new_config.py",
        "tests/test_new.py: no py_test(name = 'test_new')",
        "tests/core/test_nested.py: no py_test(name = 'test_nested')",
        "tests/core/test_twin.py and tests/loop/test_twin.py share the py_test name 'test_twin'",
        "tf_evosyn/bin/new_tool.py: no py_binary",
        "tf_evosyn/gone.py",
    ):
        assert expected in flat, f"{expected!r} not reported in:\n{flat}"
    assert cb.main(["check_build.py", str(tmp_path)]) == 1

    (tmp_path / "BUILD").write_text('py_library(name = "tf_evosyn", srcs = glob(["**/*.py"]))\n')
    with pytest.raises(cb.BuildParseError, match="glob"):
        cb.all_problems(tmp_path)


@pytest.mark.skipif(shutil.which("bazel") is None, reason="no `bazel` executable on PATH")
def test_bazel_query_succeeds(rules):
    # --max_idle_secs: do not leave a Bazel server running for hours after the test.
    cmd = ["bazel", "--max_idle_secs=300", "query", "//...", "--output=label"]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"`{' '.join(cmd)}` did not finish in {err.timeout} s")
    assert proc.returncode == 0, (
        f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    )
    labels = set(proc.stdout.split())
    expected = {f"//:{rule.name}" for rule in rules if rule.kind in cb.PY_RULES}
    assert expected <= labels, f"bazel query lacks {sorted(expected - labels)}"
