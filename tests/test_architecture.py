"""The package's import rule (docs/architecture.md), read from the source: data flows one way."""
from __future__ import annotations

import ast
from pathlib import Path

import styleavatar

ROOT = Path(styleavatar.__file__).parent
LAYERS = ("io", "tracking", "rendering", "data", "models", "training", "inference", "live", "evaluation")
"""Sub-packages in the order data flows."""
FOUNDATION = {"errors", "config", "runtime", "", "__version__"}  # "": the package itself
APPS = {"cli", "demo", "doctor", "serve"}
"""The commands: they may use every layer."""
NEVER = {"models": set(LAYERS) - {"models"},  # networks only
         "tracking": {"models"}, "rendering": {"models"},  # need no networks
         "inference": {"training"}, "live": {"training"}, "evaluation": {"training"}}
"""Imports that the layer order alone would allow but the design forbids."""
UPWARD = {("styleavatar.training.trainer", "styleavatar.evaluation.metrics"),
          ("styleavatar.training.distill", "styleavatar.evaluation.metrics"),
          ("styleavatar.training.distill", "styleavatar.inference.avatar")}
"""The named exceptions: training scores held-out frames with evaluation's pure image metrics, and
distillation loads its teacher as an avatar."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every styleavatar module ``path`` imports, at the top or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] == "styleavatar"}
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _broken_rules(graph: dict[str, set[str]]) -> list[str]:
    broken = []
    for src, targets in graph.items():
        a = _part(src)
        for dst in targets:
            b = _part(dst)
            if a == b or a in APPS or b in FOUNDATION or (src, dst) in UPWARD:
                continue
            if b in APPS or a in FOUNDATION:
                broken.append(f"{src} -> {dst} (a command or the foundation imported from below)")
            elif LAYERS.index(b) > LAYERS.index(a):
                broken.append(f"{src} -> {dst} (upward: {a} comes before {b})")
            elif b in NEVER.get(a, ()):
                broken.append(f"{src} -> {dst} ({a} never imports {b})")
    return broken


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (a module importing its own package's __init__ is not one)."""
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            nxt = nxt if nxt in graph else nxt.rsplit(".", 1)[0]  # "from .x import name" -> module x
            if nxt not in graph or nxt == node or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_every_import_points_down_the_data_flow():
    graph = _graph()
    assert len(graph) > 50 and any(graph.values())
    assert _broken_rules(graph) == []


def test_no_module_imports_itself_in_a_circle():
    assert _cycles(_graph()) == []


def test_the_rule_catches_what_it_forbids():
    fake = {"styleavatar.models.avatar": {"styleavatar.io.video"},
            "styleavatar.inference.avatar": {"styleavatar.training.trainer"},
            "styleavatar.data.dataset": {"styleavatar.inference.avatar"},
            "styleavatar.io.video": {"styleavatar.cli"}}
    assert len(_broken_rules(fake)) == 4
    circle = {"styleavatar.inference.avatar": {"styleavatar.inference.export"},
              "styleavatar.inference.export": {"styleavatar.inference.avatar.Avatar"}}
    assert _cycles(circle) == [["styleavatar.inference.avatar", "styleavatar.inference.export",
                                "styleavatar.inference.avatar"]]
