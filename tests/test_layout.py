"""The package's layout shows the pipeline: no import circle between modules or between wings, and at most
eight floors when each wing (cli, board, learn, convert, target, chip, quant, model) counts as one room and each
module of the shared floor as one, as the architecture review measured it. Imports are read from the code
(lazy imports inside functions included), so a new circle fails here before anyone has to draw the graph."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import yamflash

PKG = Path(yamflash.__file__).resolve().parent
MAX_FLOORS = 8


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_init else parts)] = (f, is_init)
    return mods


def _edges() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, (f, is_init) in mods.items():
        pkg = m if is_init else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    dest = sub if sub in mods else target
                    if dest in mods and dest != m:
                        edges[m].add(dest)
            elif isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names if a.name in mods and a.name != m)
    return edges


def _wing(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def _wings() -> dict[str, set[str]]:
    wings: dict[str, set[str]] = {}
    for m, dests in _edges().items():
        wings.setdefault(_wing(m), set()).update(_wing(d) for d in dests if _wing(d) != _wing(m))
    return wings


def test_no_module_imports_itself_round_a_circle():
    assert _cycles(_edges()) == []


def test_wings_form_no_circle_and_at_most_eight_floors():
    wings = _wings()
    assert _cycles(wings) == []

    @cache
    def floors(room: str) -> int:
        return 1 + max((floors(d) for d in wings.get(room, ())), default=0)

    deepest = max(wings, key=floors)
    assert floors(deepest) <= MAX_FLOORS, deepest
    # the pipeline reads top-down: the CLI on top, the board and learning above conversion, firmware generation
    # above the chip and quantization knowledge, the model's own files below those
    assert {"yamflash.learn", "yamflash.board"} & wings["yamflash.cli"]
    assert "yamflash.convert" not in wings["yamflash.target"]
    assert not wings["yamflash.model"] & {"yamflash.quant", "yamflash.chip", "yamflash.target", "yamflash.convert"}


def test_every_wing_is_a_package_with_a_docstring():
    for wing in ("cli", "model", "quant", "chip", "learn", "convert", "target", "board"):
        init = PKG / wing / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init} needs a docstring saying what the wing holds"
