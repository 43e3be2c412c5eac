"""The code layout: no import cycle between the project's modules.

Every ``import`` / ``from ... import`` of every module is read with ``ast`` (function-level imports
included, since a cycle hidden inside a function is still a cycle for a reader), resolved to the
project module it names, and the strongly connected components of that graph must all be single
modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("daps", "envs", "motion_vae", "lowlevel", "highlevel", "image_bench")

# Cycles still present, each as the sorted module names of one strongly connected component.
# A listed cycle that no longer exists fails the test too: delete its line then.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """{dotted module name: file} of every .py file of PACKAGES (a package is its __init__)."""
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = f
    return mods


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, mods) -> list[str]:
    """Dotted names an import statement reads: ``from a import b`` is ``a.b`` when that is a module."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: climb from the importing module's package
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in mods else prefix for a in node.names]


def import_graph(mods: dict[str, Path]) -> dict[str, dict[str, int]]:
    """{module: {imported project module: line of the first such import}}; a module importing its
    own package (``from lowlevel import policy`` inside lowlevel.x reads lowlevel/__init__) counts
    only when the package file is another module than itself."""
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for m, f in mods.items():
        tree = ast.parse(f.read_text(), filename=str(f))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported_names(m, f.name == "__init__.py", node, mods):
                while name and name not in mods:  # `import a.b.c` of a non-module attribute: its module
                    name = name.rpartition(".")[0]
                if name and name != m and not m.startswith(name + "."):
                    graph[m].setdefault(name, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _describe(comp: tuple[str, ...], graph) -> str:
    edges = [f"{a} -> {b} ({ROOT.name}/{a.replace('.', '/')}.py line {graph[a][b]})"
             for a in comp for b in graph[a] if b in comp]
    return "; ".join(edges)


def test_no_import_cycle_between_modules():
    graph = import_graph(project_modules())
    found = set(cycles(graph))
    new = found - KNOWN_CYCLES
    assert not new, "import cycles: " + " | ".join(_describe(c, graph) for c in sorted(new))
    gone = KNOWN_CYCLES - found
    assert not gone, f"no longer a cycle, remove from KNOWN_CYCLES: {sorted(gone)}"


def test_the_cycle_check_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "lowlevel"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from lowlevel.b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "c.py").write_text("import lowlevel.a\n")
    graph = import_graph(project_modules(tmp_path))
    assert graph["lowlevel.a"] == {"lowlevel.b": 2}
    assert graph["lowlevel.b"] == {"lowlevel.a": 1}
    assert cycles(graph) == [("lowlevel.a", "lowlevel.b")]



def test_options_the_groups_share_are_defined_once():
    import inspect

    import highlevel.cli
    import image_bench.cli
    import lowlevel.cli
    import motion_vae.cli
    from daps.cli_options import DEVICE, LAFAN1_DATA

    used = {"--data": 0, "--device": 0}
    for module in (motion_vae.cli, lowlevel.cli, highlevel.cli, image_bench.cli):
        commands = [c.callback for c in module.app.registered_commands] + [getattr(module, "command", None)]
        for fn in filter(None, commands):
            for p in inspect.signature(fn).parameters.values():
                decls = getattr(p.default, "param_decls", None) or ()
                if "--device" in decls:
                    assert p.default is DEVICE, f"{module.__name__}.{fn.__name__}: its own --device option"
                    used["--device"] += 1
                if "--data" in decls and module is not image_bench.cli:  # image folders, another option
                    assert p.default is LAFAN1_DATA, f"{module.__name__}.{fn.__name__}: its own --data option"
                    used["--data"] += 1
    assert used["--data"] >= 10 and used["--device"] >= 5, used
