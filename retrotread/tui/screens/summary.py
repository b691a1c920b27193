"""The summary at the end: what was done, how it ended, and how it went for the walker.

What the operator records goes to ``on_outcome`` (the session store, when one is set up);
progression reads it back to decide the next session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, RadioButton, RadioSet, Static

from retrotread.events import Outcome, SessionSummary
from retrotread.program import format_duration
from retrotread.progression import OperatorOutcome
from retrotread.tui.widgets.pace import show_distance

if TYPE_CHECKING:
    from retrotread.tui.app import ConsoleApp

log = logging.getLogger(__name__)

OutcomeRecorder = Callable[[SessionSummary, str, str], None]


def feedback_id(outcome: OperatorOutcome) -> str:
    return "feedback-" + outcome.value.replace(" ", "-")


FEEDBACK_IDS = {feedback_id(outcome): outcome for outcome in OperatorOutcome}

ENDINGS = {
    Outcome.COMPLETED: "Completed",
    Outcome.UNCONFIRMED: "Played to the end, unconfirmed",
    Outcome.STOPPED: "Stopped early",
    Outcome.INTERRUPTED: "Interrupted",
    Outcome.FAULT: "Ended by a fault",
}


def summary_table(summary: SessionSummary) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    table.add_row("Program", summary.program)
    table.add_row("Device", summary.device)
    table.add_row("Ended", f"{ENDINGS[summary.outcome]}: {summary.detail}")
    table.add_row("Blocks done", f"{summary.blocks_done} of {summary.blocks_total}")
    table.add_row("Retro time", format_duration(summary.retro_s))
    table.add_row("Elapsed", format_duration(summary.elapsed_s))
    table.add_row("Distance", show_distance(summary.distance_m))
    table.add_row("Belt", "stopped" if summary.belt_stopped else "NOT SEEN TO STOP")
    return table


class SummaryScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+n", "new_session", "New session", priority=True),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, summary: SessionSummary, on_outcome: OutcomeRecorder | None) -> None:
        super().__init__()
        self.summary = summary
        self.on_outcome = on_outcome
        self.saved: tuple[OperatorOutcome, str] | None = None

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def compose(self) -> ComposeResult:
        summary = self.summary
        yield Static(
            f"Session over · {ENDINGS[summary.outcome]}",
            id="summary-title",
            markup=False,
            classes=f"-{summary.outcome.value}",
        )
        with Horizontal(id="summary-main"):
            yield Static(summary_table(summary), id="summary-table")
            with Vertical(id="feedback-column"):
                yield Label("How did it go?", classes="heading")
                with RadioSet(id="feedback"):
                    for choice in OperatorOutcome:
                        yield RadioButton(
                            choice.value.capitalize(),
                            value=choice is OperatorOutcome.COMPLETED
                            and summary.outcome is Outcome.COMPLETED,
                            id=feedback_id(choice),
                        )
                yield Input(placeholder="note (optional)", id="note", compact=True)
        with Horizontal(id="summary-buttons"):
            yield Button("Save (ctrl+s)", id="save", variant="success", compact=True)
            yield Button("New session (ctrl+n)", id="new-session", compact=True)
            yield Button("Quit (q)", id="quit", compact=True)
        yield Static("", id="save-message", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def chosen(self) -> OperatorOutcome | None:
        pressed = self.query_one(RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return None
        return FEEDBACK_IDS[pressed.id]

    def action_save(self) -> None:
        feedback = self.chosen()
        if feedback is None:
            self._say("Choose how it went first.", error=True)
            return
        note = self.query_one("#note", Input).value.strip()
        if self.on_outcome is None:
            self.saved = (feedback, note)
            self._say(f"Noted: {feedback.value}. No session store is set up, so it is not kept.")
            return
        try:
            self.on_outcome(self.summary, feedback.value, note)
        except Exception as err:  # a failing store must not take the console down
            log.exception("recording the outcome failed")
            self._say(f"Could not save: {err}", error=True)
            return
        self.saved = (feedback, note)
        self._say(f"Saved: {feedback.value}" + (f" · {note}" if note else ""))
        self.query_one("#save", Button).disabled = True

    def action_new_session(self) -> None:
        # On the app's turn: this screen is the one being replaced.
        self.app.call_later(self.console.show_start)

    def _say(self, text: str, *, error: bool = False) -> None:
        message = self.query_one("#save-message", Static)
        message.update(text)
        message.set_class(error, "-error")

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        elif event.button.id == "new-session":
            self.action_new_session()
        elif event.button.id == "quit":
            await self.app.run_action("quit")
