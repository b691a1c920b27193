"""The block countdown in large digits, readable from the treadmill.

Digits are drawn from a 3x5 pixel font in full and half blocks (``█ ▀ ▄``, all in the PC
character set, so the Linux console shows them too), and grow with the space the widget gets:
three rows in an 80x24 terminal, most of a wall display on a large one.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from retrotread.program.model import format_duration

FONT: dict[str, tuple[str, ...]] = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", "..#", "..#"),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    ":": (".", "#", ".", "#", "."),
    "-": ("...", "...", "###", "...", "..."),
    " ": ("..", "..", "..", "..", ".."),
}
FONT_ROWS = 5

#: (columns per pixel, half-rows per pixel), smallest first. A terminal cell is about twice as
#: tall as wide, so one column by one half-row is a square pixel.
SCALES: tuple[tuple[int, int], ...] = ((2, 1), (3, 2), (4, 2), (4, 3), (6, 4), (8, 6), (10, 8))


def glyph_width(text: str, pixel_columns: int) -> int:
    pixels = sum(len(FONT[char][0]) for char in text) + max(len(text) - 1, 0)
    return pixels * pixel_columns


def glyph_height(pixel_half_rows: int) -> int:
    return -(-FONT_ROWS * pixel_half_rows // 2)


def fit_scale(text: str, width: int, height: int) -> tuple[int, int]:
    """The largest scale at which ``text`` fits in ``width`` x ``height`` cells."""
    best = SCALES[0]
    for columns, half_rows in SCALES:
        if glyph_width(text, columns) <= width and glyph_height(half_rows) <= height:
            best = (columns, half_rows)
    return best


def render_big(text: str, columns: int, half_rows: int) -> list[str]:
    """``text`` (digits, ':' and '-') as lines of block characters."""
    pixel_rows: list[str] = []
    for row in range(FONT_ROWS):
        pixels = ".".join(FONT[char][row] for char in text)
        pixel_rows.extend([pixels] * half_rows)
    if len(pixel_rows) % 2:
        pixel_rows.append("." * len(pixel_rows[0]))
    lines = []
    for top, bottom in zip(pixel_rows[::2], pixel_rows[1::2], strict=True):
        cells = []
        for upper, lower in zip(top, bottom, strict=True):
            cell = {("#", "#"): "█", ("#", "."): "▀", (".", "#"): "▄"}.get((upper, lower), " ")
            cells.append(cell * columns)
        lines.append("".join(cells))
    return lines


class BigCountdown(Widget):
    """Seconds left in the current block, as large as the space allows; during the 3-2-1
    before a change, the count itself (one digit, so it is drawn larger still)."""

    seconds: reactive[int] = reactive(0)
    count: reactive[int | None] = reactive(None)

    def __init__(self, seconds: int = 0, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(BigCountdown.seconds, seconds)

    @property
    def text(self) -> str:
        return str(self.count) if self.count is not None else format_duration(self.seconds)

    def render(self) -> Text:
        text = self.text
        width, height = self.content_size.width, self.content_size.height
        columns, half_rows = fit_scale(text, width, height)
        lines = render_big(text, columns, half_rows)
        top_padding = max((height - len(lines)) // 2, 0)
        left_padding = max((width - len(lines[0])) // 2, 0)
        body = [""] * top_padding + [" " * left_padding + line for line in lines]
        return Text("\n".join(body), no_wrap=True, overflow="crop")
