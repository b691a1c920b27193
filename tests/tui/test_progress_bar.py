"""The session bar's cells: computed in one pass, the same cells as a scan per column."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from retrotread.program import find_program
from retrotread.program.model import Block, BlockKind, Defaults, Facing, Handrail, Program, Step
from retrotread.tui.widgets.progress import bar_cells
from retrotread.units import mph, percent


def scanned_cells(steps: Sequence[Step], width: int) -> list[tuple[int, bool]]:
    """The bar as a scan of every step for every column (what the widget once did)."""
    total = sum(step.duration_s for step in steps)
    cells = []
    for column in range(width):
        start, end = column * total / width, (column + 1) * total / width
        middle = (start + end) / 2
        covering = max(i for i, step in enumerate(steps) if i == 0 or step.start_s <= middle)
        beginning = [step.index for step in steps[1:] if start <= step.start_s < end]
        cells.append((beginning[0] if beginning else covering, bool(beginning)))
    return cells


def program_of(durations: list[int]) -> Program:
    kinds = [BlockKind.RETRO, BlockKind.TURN_AROUND, BlockKind.FORWARD]
    blocks = tuple(
        Block(kinds[i % 3], d, mph("2.8"), percent(2), Handrail.BOTH_HANDS, name=f"b{i}")
        for i, d in enumerate(durations)
    )
    return Program("bar", "", blocks, Defaults(start_facing=Facing.REAR))


@pytest.mark.parametrize("width", [1, 7, 80, 200])
@pytest.mark.parametrize(
    "durations",
    [[60], [5, 600, 5, 30], [1] * 500, [3, 1, 1, 1, 40, 2, 2, 90, 1] * 20],
    ids=["one", "short-in-long", "many-per-cell", "mixed"],
)
def test_one_pass_gives_the_cells_of_a_scan(durations: list[int], width: int) -> None:
    steps = program_of(durations).steps
    assert bar_cells(steps, width) == scanned_cells(steps, width)


def test_a_built_in_program_at_console_widths() -> None:
    steps = find_program("first-week").steps
    for width in (40, 80, 120, 200):
        cells = bar_cells(steps, width)
        assert cells == scanned_cells(steps, width)
        assert any(begins for _, begins in cells)


def test_nothing_to_draw() -> None:
    assert bar_cells((), 80) == []
    assert bar_cells(program_of([10]).steps, 0) == []
