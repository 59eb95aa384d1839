"""One-way layers: every module of fxprune (and of passes/, shipped as fxprune.passes) imports only
from its own layer or the layers below it, and no two modules import each other, directly or round
a loop. The imports are read from the source with ``ast`` (function-level imports count too), so
the check needs no import of the package.

The layer map (lowest first) is written down in the README's layout section; a new module must be
placed in it here, or the test names it.
"""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (layer, module prefixes): a module belongs to the layer of its longest matching prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("fxprune._version", "fxprune.errors", "fxprune.spec", "fxprune.graph_mode", "fxprune.eval_mode",
              "fxprune.checkpoint", "fxprune.checkpoint_files", "fxprune.eval_sizes", "fxprune.widths", "fxprune.interrupt", "fxprune.images", "fxprune.tiling", "fxprune.data", "fxprune.distill", "fxprune.metrics",
              "fxprune.runtime", "fxprune.models", "fxprune.weights", "fxprune.train")),
    ("capture", ("fxprune.trace", "fxprune.fast_capture", "fxprune.layout_guards", "fxprune.baked_batch", "fxprune.shapes", "fxprune.capture_cache", "fxprune.opaque")),
    ("onnx", ("fxprune.onnx",)),  # export, file finishing, parity: needs only the capture's quiet logs
    ("analysis", ("fxprune.coupling", "fxprune.solve", "fxprune.graph", "fxprune.analysis", "fxprune.record",
                  "fxprune.counting", "fxprune.crosscheck", "fxprune.masking", "fxprune.kept_statistics")),
    ("selection", ("fxprune.selection", "fxprune.budget")),
    ("passes", ("fxprune.pass_infra", "fxprune.passes")),
    ("checks", ("fxprune.verify", "fxprune.nm_check", "fxprune.latency")),
    ("methods/api", ("fxprune.methods", "fxprune.schedule", "fxprune.api", "fxprune.pruner", "fxprune.model_io")),
    ("routing/viz/report", ("fxprune.routing", "fxprune.viz", "fxprune.report")),
    ("cli", ("fxprune.cli", "fxprune.__main__")),
]
TOP = "fxprune"  # the package root, the public API: above everything, imported by no module of its own


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for fxprune/ and passes/ (as fxprune.passes)."""
    files = {}
    for path in sorted([*(root / "fxprune").rglob("*.py"), *(root / "passes").rglob("*.py")]):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[0] == "passes":
            parts.insert(0, "fxprune")
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        if node.level:
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [node.module or ""])
        else:
            base = node.module or ""
        base = base.rstrip(".")
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    out = []
    for name in names:
        while name not in known and "." in name:
            name = name.rpartition(".")[0]
        if name in known and name != module:
            out.append(name)
    return out


def import_edges(files: dict[str, Path]) -> set[tuple[str, str]]:
    """(importer, imported) for every fxprune import; importing ``pkg.sub`` from outside ``pkg`` also
    runs ``pkg/__init__.py``, so it adds the edge to ``pkg`` (the package root excepted)."""
    known = set(files)
    edges = set()
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(module, path, node, known):
                edges.add((module, target))
                parent = target.rpartition(".")[0]
                while parent and parent != TOP and not module.startswith(parent + "."):
                    if parent in known and parent != module:
                        edges.add((module, parent))
                    parent = parent.rpartition(".")[0]
    return edges


def layer_of(module: str) -> int | None:
    if module == TOP:
        return len(LAYERS)
    best, level = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    return level


def layer_name(level: int) -> str:
    return LAYERS[level][0] if level < len(LAYERS) else "package root"


def back_edges(edges: set[tuple[str, str]]) -> list[str]:
    return [f"{a} ({layer_name(layer_of(a))}) imports {b} ({layer_name(layer_of(b))})"
            for a, b in sorted(edges) if layer_of(a) < layer_of(b)]


def cycles(edges: set[tuple[str, str]]) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return error.args[1]
    return None


FILES = module_files()
EDGES = import_edges(FILES)


def test_every_module_has_a_layer():
    assert [m for m in FILES if layer_of(m) is None] == [], "place these modules in LAYERS (and the README)"


def test_imports_go_down_the_layers_only():
    assert back_edges(EDGES) == []


def test_no_import_cycles():
    assert cycles(EDGES) is None


def test_no_module_imports_the_package_root_or_the_cli():
    cli = {m for m in FILES if layer_of(m) == len(LAYERS) - 1}
    assert sorted((a, b) for a, b in EDGES if b == TOP or (b in cli and a not in cli | {TOP})) == []


@pytest.mark.parametrize("source, problem", [
    ("from ..cli import main\n", "imports fxprune.cli (cli)"),                # a pass importing the CLI
    ("from fxprune.methods import get_method\n", "imports fxprune.methods"),  # a pass importing a method
])
def test_a_back_edge_or_a_cycle_is_caught(tmp_path, source, problem):
    """The checks themselves: a copy of the tree with one bad import added fails them."""
    for folder in ("fxprune", "passes"):
        for path in (ROOT / folder).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    bad = tmp_path / "passes" / "slice_channels.py"
    bad.write_text(source + bad.read_text())
    edges = import_edges(module_files(tmp_path))
    assert any(problem in line for line in back_edges(edges))
    assert cycles(edges) is not None  # the CLI and the methods both import slice_channels, round a loop
