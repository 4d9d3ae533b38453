"""The package's layers import downward only, never a private name of another package, and never in a circle.

Every import counts, those written inside functions too (they are most of them). When this fails, it names the
offending import; docs/design.md says what each layer owns.
"""
import ast
from pathlib import Path

import pytest

import vanexport

ROOT = Path(vanexport.__file__).parent
# Bottom to top. A module may import from its own unit and from units of lower layers; units of one layer are
# siblings that do not import each other.
LAYERS = [
    {"base": ("vanexport", "vanexport.errors", "vanexport.files", "vanexport.logs", "vanexport.machine",
              "vanexport.progress")},
    {"model": ("vanexport.model",)},
    {"data": ("vanexport.data",)},
    {"formats": ("vanexport.formats",)},
    {"runtime": ("vanexport.runtime",)},
    {"check": ("vanexport.check",)},
    {"device": ("vanexport.device",)},
    {"export": ("vanexport.export",), "precision": ("vanexport.precision",), "trt": ("vanexport.trt",)},
    {"pipeline": ("vanexport.pipeline",)},
    {"ship": ("vanexport.ship",), "bench": ("vanexport.bench",), "inspection": ("vanexport.inspection",),
     "zoo": ("vanexport.zoo",)},
    {"cli": ("vanexport.cli", "vanexport.__main__")},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def unit_of(module: str) -> tuple[int, str]:
    """(layer index, unit name) of a vanexport module: the longest prefix listed in LAYERS."""
    best = None
    for rank, units in enumerate(LAYERS):
        for unit, prefixes in units.items():
            for prefix in prefixes:
                exact_only = prefix == "vanexport"  # the package root is base; its subpackages are not
                if module == prefix or (not exact_only and module.startswith(prefix + ".")):
                    if best is None or len(prefix) > best[2]:
                        best = (rank, unit, len(prefix))
    assert best, f"{module} is in no layer: add it to LAYERS in tests/test_layers.py (and to docs/design.md)"
    return best[0], best[1]


def imports(module: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported vanexport module, names taken from it) for every import in `module`, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "vanexport"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "vanexport":
                continue
            names = [a.name for a in node.names]
            # `from . import graph` imports a module; `from .x import y` takes names from module x
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            out += [(node.lineno, f"{target}.{n}", []) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                out.append((node.lineno, target, rest))
    return out


EDGES = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        unit_of(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_only(module):
    rank, unit = unit_of(module)
    bad = []
    for line, target, names in EDGES[module]:
        t_rank, t_unit = unit_of(target)
        if t_unit == unit:
            continue
        if t_rank >= rank:
            bad.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports {target} "
                       f"({t_unit}, layer {t_rank}) from {unit} (layer {rank}): "
                       + ("siblings do not import each other" if t_rank == rank else "an upward import"))
        private = [n for n in names if n.startswith("_") and not n.endswith("__")]
        if private:
            bad.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} takes private name(s) "
                       f"{', '.join(private)} from {target}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {m: sorted({t for _, t, _ in EDGES[m] if t in MODULES and t != m}) for m in MODULES}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in graph[m]:
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_function_level_and_relative_imports():
    # A sample of known edges, so a broken parser cannot pass the tests above by seeing nothing.
    edges = {(m, t) for m in EDGES for _, t, _ in EDGES[m]}
    assert ("vanexport.cli.app", "vanexport.pipeline") in edges  # inside a command function
    assert ("vanexport.device.classify", "vanexport.device.select") in edges  # `from . import select`
    assert ("vanexport.check.validate", "vanexport.check.compare") in edges  # `from .compare import ...`
    assert unit_of("vanexport.device.classify") > unit_of("vanexport.check.compare")
