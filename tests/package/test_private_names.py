"""Private by name: a module-level function or constant that nothing outside its module uses
(no other module, test, benchmark, config, notebook or doc) starts with an underscore, so that a
plain name in ``tf_evosyn`` always means "used across modules" or "declared in ``__all__``"."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tf_evosyn"
READERS = ("tests", "benchmarks", "configs", "tools", "colab", "docs")
SUFFIXES = {".py", ".ipynb", ".md", ".yaml", ".slurm"}


def _words(path: Path) -> set[str]:
    return set(re.findall(r"\w+", path.read_text(encoding="utf-8")))


def _module_names(tree: ast.Module) -> tuple[list[str], set[str]]:
    """(top-level functions and assigned names, the module's ``__all__``)."""
    names, declared = [], set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if targets == ["__all__"]:
                declared = {element.value for element in node.value.elts}
            else:
                names += targets
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names, declared


def _offenders(modules: list[Path], readers: list[Path], root: Path) -> list[str]:
    words = {path: _words(path) for path in modules + readers}
    offenders = []
    for module in modules:
        source = module.read_text(encoding="utf-8")
        names, declared = _module_names(ast.parse(source))
        for name in names:
            if name.startswith("_") or name in declared or name == "main":
                continue
            if re.search(rf"[\"']{re.escape(name)}[\"']", source):
                continue  # looked up by its string (a registry, getattr)
            if any(name in words[path] for path in modules + readers if path != module):
                continue
            offenders.append(f"{module.relative_to(root)}: {name}")
    return offenders


def test_names_used_only_inside_their_module_are_private():
    modules = sorted(PACKAGE.rglob("*.py"))
    readers = [REPO / "README.md"] + [
        path
        for folder in READERS
        for path in (REPO / folder).rglob("*")
        if path.suffix in SUFFIXES and path != Path(__file__).resolve()
    ]
    offenders = _offenders(modules, readers, REPO)
    assert not offenders, (
        "Used only inside their own module: rename them with a leading underscore (or list "
        "them in the module's __all__ if they are its API):\n  " + "\n  ".join(offenders)
    )


def test_the_check_flags_a_public_helper_nothing_else_uses(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "__all__ = ['api']\nREGISTRY = {'by_name': 1}\n"
        "def api(): return helper() + shared() + by_name()\n"
        "def helper(): ...\ndef shared(): ...\ndef by_name(): ...\ndef _private(): ...\n"
    )
    other = tmp_path / "other.py"
    other.write_text("from module import shared\n")
    assert _offenders([module, other], [], tmp_path) == ["module.py: REGISTRY", "module.py: helper"]
