"""Imports point one way: no module of ``eid`` imports a layer above its own, and modules import no circle.

The layers, lowest first (``docs/architecture.md`` draws them):

0. foundation: ``errors``, ``utils``, ``config``, ``weights``, ``progress``, ``run_layout``
1. ``data``: files, codecs, intensity scales, datasets
2. ``physics``, ``models``, ``losses``, ``transforms``, ``baselines``: the maths
3. ``training``, ``inference``, ``metrics``, ``synth``, ``video``: what uses the maths
4. ``report``, ``prepare``: what consumes training, inference and metrics (dataset builders use synth + metrics)
5. ``demo`` (and its data, ``demo_data``), ``napari``, ``cli``, ``eid`` itself: the applications and the flat API

Every ``import`` counts, also those inside functions (lazy imports are still dependencies). The AST is read,
nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "eid.errors",
        "eid.utils",
        "eid.config",
        "eid.weights",
        "eid.progress",
        "eid.run_layout",
        "eid.zoo",
    ),
    ("eid.data",),
    ("eid.physics", "eid.models", "eid.losses", "eid.transforms", "eid.baselines"),
    ("eid.training", "eid.inference", "eid.metrics", "eid.synth"),
    ("eid.report", "eid.prepare", "eid.export"),
    ("eid.demo", "eid.demo_data", "eid.napari", "eid.cli", "eid.__main__", "eid"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest listed prefix of ``module``."""
    best, found = -1, None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), index
    if found is None:
        raise AssertionError(f"{module} is in no layer; add it to LAYERS in {Path(__file__).name}")
    return found


def imports_of(path: Path, module: str) -> dict[str, int]:
    """``{imported eid module: line}`` of every import in ``path``, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [
                        *package.split(".")[: len(package.split(".")) - node.level + 1],
                        *filter(None, [base]),
                    ]
                )
            # `from eid.x import y` may name a submodule y: count it when it is one
            names = [base] + [
                f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")
            ]
        else:
            continue
        for name in names:
            if name == "eid" or name.startswith("eid."):
                found.setdefault(name, node.lineno)
    return found


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


MODULES = {module_name(p): p for p in sorted(SRC.joinpath("eid").rglob("*.py"))}
GRAPH = {m: imports_of(p, m) for m, p in MODULES.items()}


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    own = layer_of(module)
    above = {name: line for name, line in GRAPH[module].items() if layer_of(name) > own}
    assert not above, f"{module} (layer {own}) imports a higher layer: " + ", ".join(
        f"{name} (layer {layer_of(name)}, line {line})" for name, line in sorted(above.items())
    )


def test_modules_import_no_circle() -> None:
    """No module reaches itself through explicit imports (a package's own ``__init__`` importing its
    submodules is the usual flat API and is not followed from the submodules)."""
    edges = {
        m: {n for n in deps if n in MODULES and n != m and not m.startswith(n + ".")}
        for m, deps in GRAPH.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_layer_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a data module importing the CLI is reported."""
    fake = tmp_path / "eid" / "data" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from eid.cli import app\n")
    found = imports_of(fake, "eid.data.bad")
    assert found == {"eid.cli": 2} and layer_of("eid.cli") > layer_of("eid.data.bad")
