"""The layering rule of docs/architecture.md, checked by reading every module's imports.

Nothing outside ``chatbot/server`` imports ``chatbot.server`` (the web layer sits on top: the
domain must run without it), and the module import graph has no cycle. Imports inside functions
count too: a lazy import hides a dependency without removing it. ``if TYPE_CHECKING:`` imports
count as well, so a type hint cannot smuggle an upward dependency in either.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "chatbot"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``chatbot`` modules ``path`` imports, anywhere in the file (each resolved to a module we have)."""
    targets: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        candidates: list[str] = []
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            candidates = [f"{source}.{alias.name}" for alias in node.names] + [source]
        for candidate in candidates:
            while candidate and candidate not in known:  # ``from chatbot.x import name``: the module is chatbot.x
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and candidate.startswith("chatbot"):
                targets.add(candidate)
                break
    return targets


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) for name, path in found.items()}


def is_web_layer(name: str) -> bool:
    return name == "chatbot.server" or name.startswith("chatbot.server.")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_is_found() -> None:
    graph = import_graph()
    assert "chatbot.dialogue.engine" in graph and "chatbot.server.app" in graph
    assert "chatbot.config" in graph["chatbot.dialogue.engine"]


def test_nothing_outside_the_web_layer_imports_it() -> None:
    upward = {
        name: sorted(t for t in targets if is_web_layer(t))
        for name, targets in import_graph().items()
        if not is_web_layer(name)
    }
    assert {name: targets for name, targets in upward.items() if targets} == {}


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_checks_catch_what_they_claim_to(tmp_path: Path) -> None:
    """A lazy upward import and a two-module cycle are both seen (the rule is not vacuous)."""
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from chatbot.server.errors import ApiError\n    return ApiError\n")
    assert imported("chatbot.lazy", lazy, {"chatbot.server.errors", "chatbot.lazy"}) == {"chatbot.server.errors"}
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


ENTRY_POINTS = {
    "chatbot.cli",
    "chatbot.agents.cli",
    "chatbot.integration.cli",
    "chatbot.store.cli",
    "chatbot.server.app",  # create_app(settings=None)
    "chatbot.store.migrations.env",  # Alembic's own entry point
}


def test_only_entry_points_read_the_global_settings() -> None:
    """Settings are passed down (``Settings`` given to ``create_app`` or ``Engine`` must reach redaction,
    the login throttle, the hub…), so only the commands and the app factory call ``get_settings()``."""
    readers = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "get_settings"
            ):
                readers.add(name)
    assert readers - ENTRY_POINTS == set()
