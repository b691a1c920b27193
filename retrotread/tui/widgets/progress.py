"""The whole session as one bar: a coloured stretch per block, a marker where each begins.

Done time is solid, time to come is shaded, and a pointer above the bar shows where the
session is now. Characters come from the PC character set so the Linux console shows them.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from retrotread.program.model import BlockKind, Step

KIND_COLOURS: dict[BlockKind, str] = {
    BlockKind.WARM_UP: "green",
    BlockKind.FORWARD: "blue",
    BlockKind.RECOVERY: "cyan",
    BlockKind.COOL_DOWN: "green",
    BlockKind.RETRO: "magenta",
    BlockKind.RETRO_RUN: "bright_magenta",
    BlockKind.TURN_AROUND: "yellow",
}
DONE, TO_DO, BOUNDARY, POINTER = "█", "░", "│", "▼"


def bar_cells(steps: Sequence[Step], width: int) -> list[tuple[int, bool]]:
    """For each of ``width`` cells: the index of the step it shows, and whether one begins there.

    A cell shows the step covering its middle; a cell in which a step begins gets a marker, so
    even a five-second turn-around in an hour-long session is visible.
    """
    total = sum(step.duration_s for step in steps)
    if not steps or total <= 0 or width <= 0:
        return []
    # One pass over columns and steps together (steps are in time order): linear in both, so
    # a 10,000-block program costs no more per redraw than its width.
    cells: list[tuple[int, bool]] = []
    index = 0  # the step covering the current column's middle
    upcoming = 1  # the next step whose beginning has not been placed in a column yet
    for column in range(width):
        start, end = column * total / width, (column + 1) * total / width
        middle = (start + end) / 2
        while index + 1 < len(steps) and steps[index + 1].start_s <= middle:
            index += 1
        while upcoming < len(steps) and steps[upcoming].start_s < start:
            upcoming += 1
        begins = upcoming < len(steps) and steps[upcoming].start_s < end
        # the marker takes the colour of the (first) block that begins in this cell
        cells.append((steps[upcoming].index if begins else index, begins))
    return cells


class ProgramProgress(Widget):
    """Two rows: the pointer, then the bar."""

    def __init__(self, steps: Sequence[Step], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.steps = tuple(steps)
        self.total_s = sum(step.duration_s for step in self.steps)
        self.elapsed_s = 0.0
        self._cells: tuple[int, list[tuple[int, bool]]] = (-1, [])  # (width, its cells)
        self._drawn: tuple[tuple[int, int], Text] | None = None  # ((width, done), the text)

    def show(self, elapsed_s: float) -> None:
        if elapsed_s != self.elapsed_s:
            self.elapsed_s = elapsed_s
            self.refresh()

    def render(self) -> Text:
        width = self.content_size.width
        if self._cells[0] != width:  # the layout changes rarely; the steps never
            self._cells = (width, bar_cells(self.steps, width))
        cells = self._cells[1]
        if not cells:
            return Text("")
        done_cells = round(min(self.elapsed_s / self.total_s, 1.0) * width)
        if self._drawn is not None and self._drawn[0] == (width, done_cells):
            return self._drawn[1].copy()  # most seconds move the pointer by less than a cell
        pointer = min(done_cells, width - 1)
        text = Text(no_wrap=True, overflow="crop")
        text.append(" " * pointer + POINTER + "\n", style="bold")
        for column, (index, begins) in enumerate(cells):
            colour = KIND_COLOURS[self.steps[index].kind]
            if begins:
                text.append(BOUNDARY, style=f"bold {colour}")
            elif column < done_cells:
                text.append(DONE, style=colour)
            else:
                text.append(TO_DO, style=colour)
        self._drawn = ((width, done_cells), text)
        return text.copy()
