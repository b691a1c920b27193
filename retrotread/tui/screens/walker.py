"""The walker view: only the big countdown and the cue, as large as the screen allows.

Meant for a tablet or TV behind the treadmill (``retrotread tui --serve --walker``), where the
walker looks during a retro block. The words are the ones the voice says
(:class:`~retrotread.speech.CueCaller`): the block's handrail cue, and under it the latest call
("Next: turn around, both handrails.", "Three.", "Halfway.", a STOP or a fault).

The keys are the run screen's (enter go, space pause, s or Esc STOP, m mute); ``w`` goes back
to the operator's layout.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static

from retrotread import cues
from retrotread.clinic.heart import HeartRateSample, heart_rate_text
from retrotread.events import (
    BlockExtended,
    BlockStarted,
    Event,
    Paused,
    ProgramFinished,
    ProgramStopped,
    Resumed,
    SessionHandle,
    Tick,
)
from retrotread.program.model import Step
from retrotread.speech.announcer import CueCaller
from retrotread.tui.messages import EngineEvent
from retrotread.tui.widgets.countdown import BigCountdown

if TYPE_CHECKING:
    from retrotread.tui.app import ConsoleApp


class WalkerScreen(Screen[None]):
    DEFAULT_CSS = """
    WalkerScreen {
        layout: vertical;
        background: $background;
    }
    WalkerScreen #walker-countdown {
        height: 1fr;
        width: 100%;
        color: $text;
        text-style: bold;
    }
    WalkerScreen #walker-countdown.-counting {
        color: $warning;
    }
    WalkerScreen #walker-cue {
        height: auto;
        max-height: 45%;
        width: 100%;
        padding: 1 2;
        content-align: center middle;
        text-align: center;
        background: $primary-darken-2;
        color: $text;
        text-style: bold;
    }
    WalkerScreen #walker-cue.-turn, WalkerScreen #walker-cue.-both-hands {
        background: $warning-darken-2;
    }
    WalkerScreen #walker-cue.-stop {
        background: $error;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,g", "go", "GO", show=False, priority=True),
        Binding("s", "app.stop_belt", "STOP", show=False, priority=True),
        Binding("escape", "app.stop_belt", "STOP", show=False, priority=True),
        Binding("space", "pause_resume", "Pause", show=False, priority=True),
        Binding("m", "app.toggle_mute", "Mute", show=False),
        Binding("w", "operator_view", "Operator view", show=False),
    ]

    def __init__(self, session: SessionHandle) -> None:
        super().__init__()
        self.session = session
        self.caller = CueCaller()
        step = session.state.step or session.program.steps[0]
        self.step: Step = step
        self.remaining_s = self._seconds_left(step)
        self.call = ""
        self.heart = ""  # a strap's reading, if the client wears one
        self.stopping = False
        session.subscribe(self._on_session_event)

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def _on_session_event(self, event: Event) -> None:
        if self.is_attached:  # a closed walker view stays subscribed; it just stops listening
            self.post_message(EngineEvent(event))

    def _seconds_left(self, step: Step) -> int:
        state = self.session.state
        if state.step is None or state.program_elapsed_s == 0:
            return step.duration_s
        return max(math.ceil(state.block_remaining_s - 1e-6), 0)

    def compose(self) -> ComposeResult:
        yield BigCountdown(self.remaining_s, id="walker-countdown")
        yield Static("", id="walker-cue", markup=False)

    def on_mount(self) -> None:
        self._show()

    @property
    def cue_text(self) -> str:
        """What the cue area says: the block's cue, then the latest call."""
        lines = [cues.display_cue(self.step).upper()]
        if self.call:
            lines.append(self.call)
        if self.heart:
            lines.append(self.heart)
        return "\n".join(lines)

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        call = self.caller(event)
        if call is not None and not isinstance(event, BlockStarted):
            self.call = call.text  # a block start's words are the cue itself
        match event:
            case BlockStarted(step=step, ends_at=ends_at):
                self.step, self.call = step, ""
                self.remaining_s = round(ends_at - event.at)
            case Tick(remaining_s=remaining):
                self.remaining_s = remaining
            case BlockExtended() | Paused() | Resumed():
                self.remaining_s = self._seconds_left(self.step)
            case ProgramFinished() | ProgramStopped():
                self.stopping = True
            case HeartRateSample():
                self.heart = heart_rate_text(event)
        self._show()

    def _show(self) -> None:
        countdown = self.query_one(BigCountdown)
        countdown.seconds = self.remaining_s
        countdown.set_class(self.remaining_s <= 3 and not self.stopping, "-counting")
        cue = self.query_one("#walker-cue", Static)
        turn = str(self.step.kind) == "turn-around"
        cue.set_class(turn, "-turn")
        cue.set_class(self.step.block.handrail.value == "both-hands", "-both-hands")
        cue.set_class(self.stopping, "-stop")
        cue.update(Text(self.cue_text, justify="center"))

    # -- keys: the run screen's, so the view works on its own ---------------------------------

    def action_go(self) -> None:
        if self.console.run_screen is not None:
            self.console.run_screen.action_go()

    def action_pause_resume(self) -> None:
        if self.console.run_screen is not None:
            self.console.run_screen.action_pause_resume()

    def action_operator_view(self) -> None:
        self.dismiss()
