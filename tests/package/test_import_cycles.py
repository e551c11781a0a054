"""No import cycles in tf_evosyn: module-level imports form a DAG, so data flows one way and no
import has to hide inside a function to dodge a cycle."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tf_evosyn"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path, modules: set[str]) -> set[str]:
    """The tf_evosyn modules ``path`` imports at module level (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import sub`` needs the submodule pkg.sub, not pkg's __init__ (which
            # may itself import sub: the usual package layout, not a cycle).
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n for n in submodules if n in modules]
            if len(names) < len(submodules):  # some names come from pkg's __init__ itself
                names.append(node.module)
        found |= {name for name in names if name in modules}
    return found - {_module_name(path, root)}


def find_cycle(root: Path, package: str) -> list[str] | None:
    """One import cycle among ``root/package``'s modules, or None."""
    paths = {_module_name(p, root): p for p in (root / package).rglob("*.py")}
    graph = {name: _imports(path, root, set(paths)) for name, path in paths.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target] if target in path else [name, target]
            if target not in state and (cycle := visit(target, path + [target])):
                return cycle
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return None


def test_tf_evosyn_has_no_import_cycle():
    cycle = find_cycle(REPO, "tf_evosyn")
    assert cycle is None, "Import cycle: " + " -> ".join(cycle)


def test_a_hand_made_cycle_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("import pkg.c\n")
    (package / "c.py").write_text("def f():\n    from pkg import a\n")  # inside a function
    assert find_cycle(tmp_path, "pkg") is None
    (package / "c.py").write_text("from pkg.a import thing\n")
    assert find_cycle(tmp_path, "pkg") == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def _documented_layers() -> list[str]:
    """The subpackages in the order tf_evosyn's docstring maps them (lowest first)."""
    doc = (PACKAGE / "__init__.py").read_text(encoding="utf-8").split('"""')[1]
    return re.findall(r"(?m)^    (\w+)/ ", doc)


def test_every_subpackage_imports_only_the_layers_mapped_below_it():
    layers = _documented_layers()
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert sorted(layers) == folders  # the map names every subpackage once
    modules = {_module_name(p, REPO) for p in PACKAGE.rglob("*.py")}
    upward = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue  # top-level modules: the package's API, _keras, the zoo
        for target in _imports(path, REPO, modules):
            layer = target.split(".")[1] if "." in target else ""  # the package: bin only
            if not layer and parts[0] != "bin":
                upward.append(f"{path.relative_to(REPO)} imports the package itself")
            elif layer in layers and layers.index(layer) > layers.index(parts[0]):
                upward.append(f"{path.relative_to(REPO)} imports {target}")
    assert not upward, "Imports up the documented layers:\n  " + "\n  ".join(upward)
