"""The package's layers (docs/architecture.md#layers), read from the source as a reader sees them: every
import, at module level or inside a function, goes to the same layer or one below, and no
modules import each other in a cycle. A new module is placed in LAYERS, or this test fails."""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tdpcr_edge"

# Bottom to top. Within a layer, modules may import each other as long as no cycle forms.
LAYERS = (
    {"errors", "io_utils", "lazy", "probe", "contract", "precisions", "signing", "records"},
    {"model", "data"},
    {"metrics", "scoring", "drift", "golden", "train", "report"},
    {"backends"},
    {"stream", "archive"},
    {"export"},
    {"bench", "evaluate", "ablation", "comparison", "doctor", "verify"},
    {"cli"},
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "tdpcr_edge":
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    # Package __init__ files that re-export are the public face, not a dependency.
    return {m: {d for d in imports(m, p, set(mods)) if mods[d].name != "__init__.py"} for m, p in mods.items() if m != "tdpcr_edge"}


def layer(module: str) -> str:
    return module.split(".")[1]


def test_every_module_has_a_layer():
    missing = sorted({layer(m) for m in graph()} - set(RANK))
    assert not missing, f"place these in LAYERS: {missing}"


def test_imports_go_down_the_layers():
    upward = [f"{m} -> {d}" for m, deps in graph().items() for d in deps if RANK[layer(d)] > RANK[layer(m)]]
    assert not upward, "\n".join(upward)


def test_no_import_cycles_among_modules():
    g = graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checker_sees_a_lazy_upward_import(tmp_path, monkeypatch):
    # A fault the layer test must catch: an import inside a function, from backends up to export.
    fake = tmp_path / "tdpcr_edge"
    (fake / "backends").mkdir(parents=True)
    (fake / "export").mkdir()
    for f in ("__init__.py", "backends/__init__.py", "export/__init__.py", "export/artifact.py"):
        (fake / f).write_text("")
    (fake / "backends" / "runner.py").write_text("def f():\n    from ..export.artifact import plan\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    g = graph()
    assert g["tdpcr_edge.backends.runner"] == {"tdpcr_edge.export.artifact"}
    assert RANK[layer("tdpcr_edge.export.artifact")] > RANK[layer("tdpcr_edge.backends.runner")]
