"""The shape of the code: no import circles in either package (the import-linter contracts in
pyproject.toml keep the layers apart; this keeps every module's dependencies a tree of its own
that can be read, tested and loaded alone)."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest


def import_circles(package: str) -> list[list[str]]:
    """Strongly connected groups of modules (Tarjan), type-checking-only imports left out."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in graph.modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


@pytest.mark.parametrize("package", ["retrotread", "retrotread_sim"])
def test_no_import_circles(package: str) -> None:
    assert import_circles(package) == []


def test_the_check_finds_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "circular"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from circular import b\n")
    (root / "b.py").write_text("from circular import a\n")
    (root / "c.py").write_text("from circular import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_circles("circular") == [["circular.a", "circular.b"]]


def test_no_module_imports_the_command_line() -> None:
    graph = grimp.build_graph("retrotread", exclude_type_checking_imports=True, cache_dir=None)
    assert graph.find_modules_that_directly_import("retrotread.cli") == {"retrotread.__main__"}


#: Where a command line becomes typed options: only these may read an argparse.Namespace.
COMMAND_LINE_EDGE = {
    "retrotread.cli",
    "retrotread.config",
    "retrotread.completion",
    "retrotread.commands",
    "retrotread.program.formats.command",
    "retrotread.speech.options",
    "retrotread.tui.command",
    "retrotread.web.options",
    "retrotread.floor.command",
}


def test_only_the_command_line_edge_imports_argparse() -> None:
    graph = grimp.build_graph(
        "retrotread",
        include_external_packages=True,
        exclude_type_checking_imports=True,
        cache_dir=None,
    )
    readers = {
        module
        for module in graph.find_modules_that_directly_import("argparse")
        if not any(module == edge or module.startswith(f"{edge}.") for edge in COMMAND_LINE_EDGE)
    }
    assert readers == set()
