"""What comes next and when; the 3-2-1 before every change."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from retrotread.program.model import Step, format_duration
from retrotread.tui.widgets.pace import describe_pace


class NextUp(Static):
    """``NEXT in 0:27 · TURN Turn-around (1/6) · 1 mph``; during the 3-2-1 the count leads."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.next_step: Step | None = None
        self.last_block = False
        self.in_s = 0
        self.count: int | None = None
        self._drawn = False

    def show(self, next_step: Step | None, in_s: int, count: int | None = None) -> None:
        """Redrawn only when what it says changes; one line, so never re-laid out."""
        if (next_step, in_s, count) == (self.next_step, self.in_s, self.count) and self._drawn:
            return
        self.next_step = next_step
        self.in_s = in_s
        self.count = count
        self._drawn = True
        self.set_class(count is not None, "-counting")
        self.update(self._text(), layout=False)

    def _text(self) -> Text:
        step = self.next_step
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.count is not None:
            text.append(f" {self.count} ", style="bold reverse")
            text.append("  ")
            if step is None:
                text.append("END · the belt stops", style="bold")
                return text
            text.append(f"{step.kind.label} ", style="bold")
            text.append(f"{step.title} · {describe_pace(step)}")
            return text
        if step is None:
            text.append("LAST BLOCK", style="bold")
            text.append(f" · the belt stops in {format_duration(self.in_s)}")
            return text
        text.append("NEXT", style="bold")
        text.append(f" in {format_duration(self.in_s)} · ")
        text.append(f"{step.kind.label} ", style="bold")
        text.append(f"{step.title} · {describe_pace(step)}")
        return text
