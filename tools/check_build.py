"""Check that the root BUILD file lists every module, test, binary and config, and nothing stale.

    python tools/check_build.py [REPO_ROOT]            # check
    python tools/check_build.py --write [REPO_ROOT]    # rewrite BUILD from the files

prints what is missing from (or stale in) BUILD, with a ready-to-paste snippet for each missing
target, and exits 1 if anything is wrong. ``--write`` regenerates every target from the files
on disk (keeping BUILD's header comment): the way to resolve a merge conflict in BUILD.
No Bazel is needed: BUILD is Starlark, whose simple
``rule(name = "...", srcs = [...])`` calls are also valid Python, so it is read with ``ast`` and
every attribute must be a literal (lists written out explicitly, no glob()).

tests/tools/test_build_file.py runs the same checks under pytest.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "tf_evosyn"
LIBRARY = "tf_evosyn"  # name of the py_library target, //:tf_evosyn
FILE_ATTRS = ("srcs", "data", "main")
PY_RULES = ("py_library", "py_binary", "py_test")


class BuildParseError(ValueError):
    """BUILD uses something the literal-only parser cannot read (e.g. glob() or a variable)."""


@dataclass
class Rule:
    kind: str
    attrs: dict = field(default_factory=dict)
    line: int = 0

    @property
    def name(self) -> str:
        return self.attrs.get("name", "")

    def files(self) -> list[str]:
        """Source-file labels named in srcs/data/main (relative to the root package)."""
        out = []
        for attr in FILE_ATTRS:
            value = self.attrs.get(attr)
            values = [value] if isinstance(value, str) else list(value or [])
            out += [v for v in values if not v.startswith((":", "//", "@"))]
        return out


def parse_build(text: str) -> list[Rule]:
    """Top-level rule calls of a BUILD file, with literal attribute values."""
    try:
        tree = ast.parse(text, filename="BUILD")
    except SyntaxError as err:
        raise BuildParseError(f"BUILD is not parseable: {err}") from err
    rules = []
    for node in tree.body:
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        if not isinstance(call.func, ast.Name) or call.func.id == "load":
            continue
        attrs = {}
        for kw in call.keywords:
            try:
                attrs[kw.arg] = ast.literal_eval(kw.value)
            except ValueError as err:
                raise BuildParseError(
                    f"BUILD line {kw.value.lineno}: {call.func.id}({kw.arg} = ...) is not a "
                    "literal; list files explicitly (no glob()) so new modules are added on purpose"
                ) from err
        rules.append(Rule(call.func.id, attrs, node.lineno))
    return rules


def load_rules(root: Path = REPO_ROOT) -> list[Rule]:
    return parse_build((root / "BUILD").read_text())


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def package_modules(root: Path = REPO_ROOT) -> list[str]:
    """Every .py file under tf_evosyn/ (skipping __pycache__ and hidden folders)."""
    files = (root / PACKAGE).rglob("*.py")
    keep = (p for p in files if not any(part.startswith((".", "__pycache__")) for part in p.parts))
    return sorted(_rel(p, root) for p in keep if p.is_file())


def bin_modules(root: Path = REPO_ROOT) -> list[str]:
    return sorted(
        _rel(p, root) for p in (root / PACKAGE / "bin").glob("*.py") if not p.name.startswith("_")
    )


def pytest_files(root: Path = REPO_ROOT) -> list[str]:
    """Every tests/**/test_*.py: tests/ mirrors the package (tests/core/, tests/loop/, ...)."""
    files = (p for p in (root / "tests").rglob("test_*.py") if p.is_file())
    rels = (_rel(p, root) for p in files)
    return sorted(
        r for r in rels if not any(part.startswith((".", "__pycache__")) for part in r.split("/"))
    )


def config_files(root: Path = REPO_ROOT) -> list[str]:
    return sorted(_rel(p, root) for p in (root / "configs").glob("*.py"))


def has_slow_marker(path: Path) -> bool:
    """True if the test file uses ``pytest.mark.slow`` (or ``mark.slow``) anywhere in code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "slow":
            owner = node.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
                isinstance(owner, ast.Name) and owner.id == "mark"
            ):
                return True
    return False


def _stem(path: str) -> str:
    return Path(path).stem


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def _by_kind(rules: list[Rule], kind: str) -> dict[str, Rule]:
    return {r.name: r for r in rules if r.kind == kind}


def library_rule(rules: list[Rule]) -> Rule | None:
    return _by_kind(rules, "py_library").get(LIBRARY)


def missing_library_srcs(rules: list[Rule], root: Path = REPO_ROOT) -> list[str]:
    lib = library_rule(rules)
    srcs = set(_as_list(lib.attrs.get("srcs"))) if lib else set()
    return [f for f in package_modules(root) if f not in srcs]


def missing_library_data(rules: list[Rule], root: Path = REPO_ROOT) -> list[str]:
    lib = library_rule(rules)
    data = set(_as_list(lib.attrs.get("data"))) if lib else set()
    return [f for f in config_files(root) if f not in data]


def py_test_problems(rules: list[Rule], root: Path = REPO_ROOT) -> list[str]:
    """tests/**/test_*.py files without a well-formed py_test (name = stem, main = the file)."""
    tests = _by_kind(rules, "py_test")
    problems = []
    by_stem: dict[str, list[str]] = {}
    for path in pytest_files(root):
        by_stem.setdefault(_stem(path), []).append(path)
    for stem, paths in sorted(by_stem.items()):
        if len(paths) > 1:  # pytest tells them apart (tests/ is a package), a py_test name cannot
            problems.append(f"{' and '.join(paths)} share the py_test name {stem!r}: rename one")
    for path in pytest_files(root):
        rule = tests.get(_stem(path))
        if rule is None:
            problems.append(f"{path}: no py_test(name = {_stem(path)!r})")
            continue
        srcs = _as_list(rule.attrs.get("srcs"))
        for need in (path, "tests/conftest.py"):
            if need not in srcs and (root / need).exists():
                problems.append(f"{path}: py_test {rule.name!r} srcs lacks {need!r}")
        if rule.attrs.get("main") != path:
            problems.append(f"{path}: py_test {rule.name!r} needs main = {path!r}")
        if f":{LIBRARY}" not in _as_list(rule.attrs.get("deps")):
            problems.append(f"{path}: py_test {rule.name!r} needs deps = [':{LIBRARY}']")
    return problems


def slow_tag_problems(rules: list[Rule], root: Path = REPO_ROOT) -> list[str]:
    """py_test tags must say "slow" exactly when the file uses pytest.mark.slow."""
    tests = _by_kind(rules, "py_test")
    problems = []
    for path in pytest_files(root):
        rule = tests.get(_stem(path))
        if rule is None:
            continue  # reported by py_test_problems
        tagged = "slow" in _as_list(rule.attrs.get("tags"))
        marked = has_slow_marker(root / path)
        if marked and not tagged:
            problems.append(f"{path} uses pytest.mark.slow: add tags = ['slow'] to its py_test")
        elif tagged and not marked:
            problems.append(f"{path} has no pytest.mark.slow: drop 'slow' from its py_test tags")
    return problems


def binary_problems(rules: list[Rule], root: Path = REPO_ROOT) -> list[str]:
    """tf_evosyn/bin/*.py modules without a py_binary (name = stem, main = the module)."""
    binaries = _by_kind(rules, "py_binary")
    by_main = {r.attrs.get("main"): r for r in binaries.values()}
    problems = []
    for path in bin_modules(root):
        rule = by_main.get(path) or binaries.get(_stem(path))
        if rule is None:
            problems.append(f"{path}: no py_binary(name = {_stem(path)!r}, main = {path!r})")
        elif rule.attrs.get("main") != path:
            problems.append(f"{path}: py_binary {rule.name!r} needs main = {path!r}")
    return problems


def stale_entries(rules: list[Rule], root: Path = REPO_ROOT) -> list[str]:
    """Files named in BUILD that do not exist, local deps on undefined targets, duplicate names."""
    problems = []
    names = [r.name for r in rules]
    for rule in rules:
        for f in rule.files():
            if not (root / f).is_file():
                problems.append(f"{rule.kind} {rule.name!r} (BUILD line {rule.line}): {f}")
        for dep in _as_list(rule.attrs.get("deps")):
            if dep.startswith(":") and dep[1:] not in names:
                problems.append(f"{rule.kind} {rule.name!r}: deps names undefined target {dep}")
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"target name {name!r} is defined {names.count(name)} times")
    return problems


def all_problems(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    rules = parse_build((root / "BUILD").read_text())
    return {
        f"Modules missing from py_library :{LIBRARY} srcs": missing_library_srcs(rules, root),
        f"Configs missing from py_library :{LIBRARY} data": missing_library_data(rules, root),
        "Test files without a correct py_test": py_test_problems(rules, root),
        "Slow tags out of step with pytest.mark.slow": slow_tag_problems(rules, root),
        "bin/ modules without a py_binary": binary_problems(rules, root),
        "Stale entries in BUILD": stale_entries(rules, root),
    }


def py_test_snippet(path: str, slow: bool = False) -> str:
    tags = '\n    tags = ["slow"],' if slow else ""
    return (
        f"py_test(\n"
        f'    name = "{_stem(path)}",\n'
        f'    size = "medium",\n'
        f'    srcs = [\n        "{path}",\n        "tests/conftest.py",\n    ],\n'
        f'    main = "{path}",{tags}\n'
        f'    deps = [":{LIBRARY}"],\n)'
    )


def py_binary_snippet(path: str) -> str:
    return (
        f"py_binary(\n"
        f'    name = "{_stem(path)}",\n'
        f'    srcs = ["{path}"],\n'
        f'    main = "{path}",\n'
        f'    deps = [":{LIBRARY}"],\n)'
    )


def _string_list(items: list[str], indent: str = "        ") -> str:
    return "".join(f'{indent}"{item}",\n' for item in items)


def render_build(root: Path = REPO_ROOT) -> str:
    """BUILD as the files on disk define it: the library, one binary per bin/ module, one
    py_test per test file (tagged slow when it uses pytest.mark.slow)."""
    text = (root / "BUILD").read_text() if (root / "BUILD").exists() else ""
    header = text[: text.index("package(")] if "package(" in text else ""
    parts = [
        header + 'package(default_visibility = ["//visibility:public"])',
        f'py_library(\n    name = "{LIBRARY}",\n    srcs = [\n'
        + _string_list(package_modules(root))
        + "    ],\n    # Experiment configs are loaded by path (ml_collections config_flags), not "
        "imported.\n    data = [\n"
        + _string_list(config_files(root))
        + '    ],\n    imports = ["."],\n)',
        "# ---- Binaries: one per module in tf_evosyn/bin/ (except __init__.py). ----",
        *(py_binary_snippet(p) for p in bin_modules(root)),
        "# ---- Tests: one per tests/**/test_*.py (pytest files; tests/ mirrors tf_evosyn/). ----",
        *(py_test_snippet(p, has_slow_marker(root / p)) for p in pytest_files(root)),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--write":
        root = Path(argv[2]).resolve() if len(argv) > 2 else REPO_ROOT
        (root / "BUILD").write_text(render_build(root))
        argv = [argv[0], str(root)]
    root = Path(argv[1]).resolve() if len(argv) > 1 else REPO_ROOT
    try:
        problems = all_problems(root)
    except BuildParseError as err:
        print(err)
        return 1
    if not any(problems.values()):
        print(f"{root / 'BUILD'}: OK (every module, config, test and binary is listed)")
        return 0
    for title, items in problems.items():
        if items:
            print(f"{title}:")
            print("\n".join(f"  {item}" for item in items))
    rules = parse_build((root / "BUILD").read_text())
    tests = _by_kind(rules, "py_test")
    binaries = {r.attrs.get("main") for r in rules if r.kind == "py_binary"}
    snippets = [
        py_test_snippet(p, has_slow_marker(root / p))
        for p in pytest_files(root)
        if _stem(p) not in tests
    ]
    snippets += [py_binary_snippet(p) for p in bin_modules(root) if p not in binaries]
    if snippets:
        print("\nTargets to add to BUILD:\n")
        print("\n\n".join(snippets))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
