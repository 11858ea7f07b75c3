"""The package's import structure: no import cycles between modules, and no module imports a layer above its
own (docs/ARCHITECTURE.md draws the layers). Every import counts, including those inside functions: a lazy
import only hides a cycle."""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "gs_recon"

# lowest first; a module may import its own layer and the layers below it
LAYERS = [
    {"gs_recon", "errors", "geometry", "config", "io_utils", "progress", "heap", "dist"},  # foundations
    {"data"},  # inputs -> Scene
    {"gaussians", "render"},  # the Gaussians and their rendering
    {"mesh", "eval"},  # surfaces and measurements of a set of Gaussians
    {"prior", "train"},  # optimisation: reconstruction and the generative prior
    {"export", "run", "pipeline", "viewer", "cli", "__main__"},  # outputs, runs, entry points
]


def _modules():
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (p, is_pkg)
    return out


def _graph():
    mods = _modules()
    graph = {}
    for name, (path, is_pkg) in mods.items():
        pkg = name if is_pkg else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("gs_recon"):
                    continue
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                deps.update(subs if subs else [target])  # `from . import dist` depends on dist, not on gs_recon
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("gs_recon"))
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_layers.py (add it where it belongs)")


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_imports_a_layer_above_it():
    bad = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
           for m, deps in sorted(_graph().items()) for d in sorted(deps) if _layer(d) > _layer(m)]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_cycles_and_upward_imports(tmp_path, monkeypatch):
    """The two checks above on a hand-made package: they must fail where they should."""
    pkg = tmp_path / "gs_recon"
    (pkg / "render").mkdir(parents=True)
    (pkg / "train").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "render" / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "render" / "a.py").write_text("def f():\n    from ..train.b import g\n")  # lazy, upward
    (pkg / "train" / "b.py").write_text("from ..render.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    g = _graph()
    assert g["gs_recon.render.a"] == {"gs_recon.train.b"} and g["gs_recon.train.b"] == {"gs_recon.render.a"}
    with pytest.raises(AssertionError, match="gs_recon.render.a"):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match=r"gs_recon.render.a \(layer 2\) imports gs_recon.train.b \(layer 4\)"):
        test_no_module_imports_a_layer_above_it()
