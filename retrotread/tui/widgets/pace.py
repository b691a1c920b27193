"""Target against actual: speed (mph, with km/h), incline, distance, elapsed and remaining."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from retrotread.events import TelemetryReceived
from retrotread.program.model import Step, format_duration
from retrotread.units import Quantity, show_incline, show_speed, show_speed_both

METRES_PER_MILE = 1609.344


def describe_pace(step: Step) -> str:
    block = step.block
    if block.speed is None:
        return f"belt paused, {show_incline(block.incline)}"
    return f"{show_speed(block.speed)}, {show_incline(block.incline)}"


def speed_cell(speed: Quantity | None) -> str:
    return "-" if speed is None else show_speed_both(speed)


def incline_cell(incline: Quantity | None) -> str:
    return "-" if incline is None else f"{float(incline.value):.1f} %"


def show_distance(metres: float) -> str:
    return f"{metres / 1000:.2f} km ({metres / METRES_PER_MILE:.2f} mi)"


@dataclass(frozen=True)
class PaceReading:
    target_speed: Quantity | None  # None: the belt is meant to be paused or stopped
    target_incline: Quantity | None
    telemetry: TelemetryReceived | None
    elapsed_s: float
    remaining_s: float
    live: bool = True  # False while the link is down: the last reading is not the belt now


class PacePanel(Static):
    """Two columns, set, actual; then distance and time."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.reading: PaceReading | None = None
        self._shown: tuple[str, ...] = ()  # the cells on screen; () before the first show

    def show(self, reading: PaceReading) -> None:
        """Show ``reading``; redrawn only when a cell's words change (the screen asks after
        every engine event, several a second), and never re-laid out: five rows, always."""
        self.reading = reading
        cells = self._cells(reading)
        if cells != self._shown:
            first = not self._shown
            self._shown = cells
            self.update(self._table(cells, live=reading.live), layout=first)

    @staticmethod
    def _cells(reading: PaceReading) -> tuple[str, ...]:
        actual = reading.telemetry
        return (
            speed_cell(reading.target_speed),
            speed_cell(actual.speed if actual else None) if reading.live else "unknown: no link",
            f"{incline_cell(reading.target_incline)} set · "
            f"{incline_cell(actual.incline if actual and reading.live else None)} now",
            show_distance(actual.distance_m if actual else 0.0),
            f"{format_duration(reading.elapsed_s)} done · "
            f"{format_duration(reading.remaining_s)} left",
        )

    @staticmethod
    def _table(cells: tuple[str, ...], *, live: bool) -> Table:
        target, actual, incline, distance, time = cells
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_row("Target", Text(target, style="bold"))
        table.add_row("Actual", actual if live else Text(actual, style="bold"))
        table.add_row("Incline", incline)
        table.add_row("Distance", distance)
        table.add_row("Time", time)
        return table
