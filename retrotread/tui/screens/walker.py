"""The walker view: only the big countdown and the cue, as large as the screen allows.

Meant for a tablet or TV behind the treadmill (``retrotread tui --walker``), where the
walker looks during a retro block. The words are the ones the voice says
(:class:`~retrotread.speech.CueCaller`): the block's handrail cue, and under it the latest call
("Next: turn around, both handrails.", "Three.", "Halfway.", a STOP or a fault). Above the
countdown, a hint outside the run ("READY · the belt starts on the operator's go", "Session
over"); the 3-2-1 before a change fills the countdown. The cue's colours are the run screen's
and the served page's (:mod:`retrotread.walker`). When the session ends the view stays: the
operator's summary waits under it until ``w``.

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
    COUNTDOWN_FROM,
    BlockExtended,
    BlockStarted,
    Countdown,
    Event,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    SessionEnded,
    SessionHandle,
    Tick,
)
from retrotread.program.model import BlockKind, Step
from retrotread.speech.announcer import CueCaller
from retrotread.tui.messages import AwaitingGo, EngineEvent
from retrotread.tui.widgets.countdown import BigCountdown
from retrotread.tui.widgets.cue import HANDRAIL_CLASSES
from retrotread.vocabulary import EngineState
from retrotread.walker import HINTS, WalkerPhase, grip_for

if TYPE_CHECKING:
    from retrotread.tui.app import ConsoleApp


class WalkerScreen(Screen[None]):
    DEFAULT_CSS = """
    WalkerScreen {
        layout: vertical;
        background: $background;
    }
    WalkerScreen #walker-hint {
        height: auto;
        width: 100%;
        text-align: center;
        text-style: bold;
        color: $text-muted;
    }
    WalkerScreen #walker-hint.-ready {
        background: ansi_green;
        color: ansi_black;
    }
    WalkerScreen #walker-countdown {
        height: 1fr;
        width: 100%;
        color: ansi_bright_white;
        text-style: bold;
    }
    WalkerScreen #walker-countdown.-counting {
        color: ansi_bright_red;
    }
    WalkerScreen #walker-cue {
        height: auto;
        max-height: 45%;
        width: 100%;
        padding: 1 2;
        content-align: center middle;
        text-align: center;
        text-style: bold;
    }
    """
    # The cue's colours are in app.tcss: one rule per handrail level for both screens.

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
        self.count: int | None = None  # the 3-2-1 before a change
        self.call = ""
        self.heart = ""  # a strap's reading, if the client wears one
        self.phase = self._phase_now(session)
        session.subscribe(self._on_session_event)

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def _on_session_event(self, event: Event) -> None:
        if self.is_attached:  # a closed walker view stays subscribed; it just stops listening
            self.post_message(EngineEvent(event))

    @staticmethod
    def _phase_now(session: SessionHandle) -> WalkerPhase:
        """Where the session is, for a view opened at any moment (``w`` mid-block too); the
        console tells a view opened before the go that the belt waits (:meth:`awaiting_go`)."""
        state = session.state
        if state.stop_requested:
            return WalkerPhase.STOPPING
        match state.engine:
            case EngineState.RUNNING:
                return WalkerPhase.RUNNING
            case EngineState.PAUSED:
                return WalkerPhase.PAUSED
        return WalkerPhase.CONNECTING

    @property
    def stopping(self) -> bool:
        return self.phase in (WalkerPhase.STOPPING, WalkerPhase.ENDED)

    @property
    def started(self) -> bool:
        return self.phase in (WalkerPhase.RUNNING, WalkerPhase.PAUSED)

    @property
    def hint(self) -> str:
        return HINTS[self.phase]

    def _seconds_left(self, step: Step) -> int:
        state = self.session.state
        if state.step is None or state.program_elapsed_s == 0:
            return step.duration_s
        return max(math.ceil(state.block_remaining_s - 1e-6), 0)

    def compose(self) -> ComposeResult:
        yield Static("", id="walker-hint", markup=False)
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

    def awaiting_go(self) -> None:
        """The console waits for the operator's go: the walker sees that it is ready."""
        if self.phase is WalkerPhase.CONNECTING:
            self.phase = WalkerPhase.READY
            if self.is_attached:
                self._show()

    def on_awaiting_go(self, message: AwaitingGo) -> None:
        self.awaiting_go()

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        call = self.caller(event)
        if call is not None and not isinstance(event, BlockStarted):
            self.call = call.text  # a block start's words are the cue itself
        match event:
            case ProgramStarted():
                self.phase = WalkerPhase.RUNNING
            case BlockStarted(step=step, ends_at=ends_at):
                self.step, self.call, self.count = step, "", None
                self.remaining_s = round(ends_at - event.at)
            case Tick(remaining_s=remaining):
                self.remaining_s = remaining
                if remaining > COUNTDOWN_FROM:
                    self.count = None
            case Countdown(count=count):
                self.count = count
            case BlockExtended() | Paused() | Resumed():
                self.count = None
                self.remaining_s = self._seconds_left(self.step)
                if not self.stopping:
                    paused = isinstance(event, Paused)
                    self.phase = WalkerPhase.PAUSED if paused else WalkerPhase.RUNNING
            case ProgramFinished() | ProgramStopped():
                self.phase, self.count = WalkerPhase.STOPPING, None
            case SessionEnded():
                self.phase, self.count = WalkerPhase.ENDED, None
            case HeartRateSample():
                self.heart = heart_rate_text(event)
        self._show()

    def _show(self) -> None:
        hint = self.query_one("#walker-hint", Static)
        hint.update(self.hint)
        hint.display = bool(self.hint)
        hint.set_class(self.phase is WalkerPhase.READY, "-ready")
        countdown = self.query_one(BigCountdown)
        countdown.seconds = self.remaining_s
        countdown.count = None if self.stopping else self.count
        counting = self.count is not None or (self.remaining_s <= COUNTDOWN_FROM and self.started)
        countdown.set_class(counting and not self.stopping, "-counting")
        cue = self.query_one("#walker-cue", Static)
        grip = HANDRAIL_CLASSES[grip_for(self.step)]
        for name in HANDRAIL_CLASSES.values():
            cue.set_class(name == grip, name)
        cue.set_class(self.step.kind is BlockKind.TURN_AROUND, "-turn")
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
