"""The run screen: what the operator watches from two metres while the belt moves.

Every engine event arrives as an :class:`~retrotread.tui.messages.EngineEvent` and updates the
widgets; every key goes straight to the session (STOP does not wait for anything on screen).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Footer, Static

from retrotread.clinic.heart import HeartRateSample, heart_rate_text
from retrotread.events import (
    COUNTDOWN_FROM,
    BlockExtended,
    BlockSkipped,
    BlockStarted,
    CommandConfirmed,
    CommandUnconfirmed,
    Countdown,
    CueDue,
    Event,
    Fault,
    LinkRestored,
    Notice,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    SessionEnded,
    SessionHandle,
    StopProgress,
    StopState,
    TelemetryReceived,
    Tick,
)
from retrotread.program.model import Step
from retrotread.tui.messages import AwaitingGo, EngineEvent
from retrotread.tui.screens.error import is_rejection, problem_for_fault, problem_for_rejection
from retrotread.tui.widgets.countdown import BigCountdown
from retrotread.tui.widgets.cue import CueBanner
from retrotread.tui.widgets.link import LinkState, LinkStatus
from retrotread.tui.widgets.next_up import NextUp
from retrotread.tui.widgets.pace import PacePanel, PaceReading
from retrotread.tui.widgets.progress import ProgramProgress
from retrotread.vocabulary import Command, EngineState, FaultKind

if TYPE_CHECKING:
    from retrotread.tui.app import ConsoleApp

NUDGE_MPH = 0.1
NOTICE_S = 5.0  # how long a notice stays on the message line unless it says otherwise


class RunScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "go", "GO", priority=True),
        Binding("g", "go", "GO", show=False),
        Binding("s", "app.stop_belt", "STOP", priority=True),
        Binding("escape", "app.stop_belt", "STOP", show=False, priority=True),
        Binding("space", "pause_resume", "Pause", priority=True),
        Binding("n", "skip", "Skip"),
        Binding("e", "extend", "+15s"),
        Binding("plus,equals_sign", "nudge(1)", "+0.1"),
        Binding("minus,underscore", "nudge(-1)", "-0.1"),
        Binding("w", "app.walker_view", "Walker"),
        Binding("m", "app.toggle_mute", "Mute"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, session: SessionHandle) -> None:
        super().__init__()
        self.session = session
        self.program = session.program
        first = self.program.steps[0]
        self.step: Step = first
        self.next_step: Step | None = self.program.steps[1] if len(self.program.steps) > 1 else None
        self.remaining_s = first.duration_s
        self.elapsed_s = 0.0
        self.program_remaining_s = float(self.program.total_s)
        self.waiting_for_go = False
        self.started = False
        self.ending = False
        self.fatal_fault: Fault | None = None
        self.warning = ""
        self.warning_for: Command | None = None  # the command whose trouble the warning shows
        self.notice = ""  # the latest notice, on the warning's line while no warning shows
        self._notice_timer: Timer | None = None
        self.status_text = "connecting to the device"
        self._status_shown: tuple[str, str] | None = None  # (words, style) on the status line

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def post_engine_event(self, event: Event) -> None:
        """The session's listener: never blocks the engine, only queues a message."""
        self.post_message(EngineEvent(event))

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="run-top"):
            yield Static(self.program.name, id="program-name", markup=False)
            yield Static("", id="mute-state", markup=False)
            heart = Static("", id="heart-rate", markup=False)  # a strap's reading, if any
            heart.display = False  # until a strap reads
            yield heart
            yield LinkState(self.session.state.device, id="link")
        yield Static("", id="block-title")
        with Horizontal(id="run-main"):
            with Vertical(id="countdown-box"):
                yield BigCountdown(self.remaining_s, id="countdown")
                yield Static("", id="run-status", markup=False)
            with Vertical(id="run-side"):
                yield PacePanel(id="pace")
                stop = Button("STOP (s)", id="stop-button", variant="error", compact=True)
                stop.can_focus = False
                yield stop
        yield CueBanner(id="cue")
        yield NextUp(id="next-up")
        yield ProgramProgress(self.program.steps, id="progress")
        yield Static("", id="warning", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._show_block(self.step, self.next_step, self.step.duration_s)
        self._show_status()
        self._show_pace()
        self._show_mute()

    # -- engine events ------------------------------------------------------------------------

    def on_awaiting_go(self, message: AwaitingGo) -> None:
        self.waiting_for_go = True
        self.query_one(LinkState).set_status(LinkStatus.CONNECTED)
        self._show_status()
        self.refresh_bindings()

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        match event:
            case ProgramStarted():
                self.started = True
                self.waiting_for_go = False
                self.refresh_bindings()
            case BlockStarted(step=step, next_step=next_step, ends_at=ends_at):
                self._show_block(step, next_step, round(ends_at - event.at))
            case Tick():
                self._on_tick(event)
            case CueDue(step=step):
                self.query_one(NextUp).add_class("-soon")
            case Countdown(step=step, count=count):
                self.query_one(NextUp).show(step, self.remaining_s, count)
                countdown = self.query_one(BigCountdown)
                countdown.count = count  # the 3-2-1 in the big digits, where everyone looks
                countdown.add_class("-counting")
                self.console.ring()
            case Paused() | Resumed():
                if isinstance(event, Resumed):
                    self.console.close_problem("hold")
                self.query_one(BigCountdown).count = None  # a resumed 3-2-1 counts again
                self._sync_remaining()
                self.refresh_bindings()
            case BlockSkipped(step=step):
                self.notify(f"Skipped {step.title}", timeout=3)
            case BlockExtended(seconds=seconds):
                self._sync_remaining()
                countdown = self.query_one(BigCountdown)
                countdown.count = None
                countdown.remove_class("-counting")
                self.notify(f"+{seconds} s on {self.step.title}", timeout=3)
            case TelemetryReceived():
                link = self.query_one(LinkState)
                if link.status in (LinkStatus.CONNECTING, LinkStatus.CONNECTED):
                    link.set_status(LinkStatus.CONNECTED)
            case CommandConfirmed(command=command):
                if self.warning_for is command:
                    self._warn("")
            case CommandUnconfirmed():
                self._on_unconfirmed(event)
            case Fault():
                self._on_fault(event)
            case StopProgress(state=state, message=text):
                # Where the stop stands goes on the warning line, not in a toast that covers
                # the screen; a confirmed stop clears it.
                self._warn("" if state is StopState.CONFIRMED else f"! {text}")
            case LinkRestored(message=text):
                self.query_one(LinkState).set_status(LinkStatus.CONNECTED)
                self.notify(text, timeout=5)
            case HeartRateSample():
                heart = self.query_one("#heart-rate", Static)
                heart.update(heart_rate_text(event))
                heart.display = True
                heart.set_class(event.recovering, "-over")
            case Notice(message=text):
                self.notify(text, timeout=5)
            case ProgramFinished() | ProgramStopped():
                self.ending = True
                self.query_one(BigCountdown).count = None
                self.waiting_for_go = False
                self.refresh_bindings()
            case SessionEnded():
                self.query_one(LinkState).set_status(LinkStatus.CLOSED)
        self._show_status()
        self._show_pace()

    def _on_tick(self, tick: Tick) -> None:
        self.remaining_s = tick.remaining_s
        self.elapsed_s = tick.program_elapsed_s
        self.program_remaining_s = tick.program_remaining_s
        countdown = self.query_one(BigCountdown)
        countdown.seconds = tick.remaining_s
        if tick.remaining_s > COUNTDOWN_FROM:
            countdown.count = None
        self.query_one(NextUp).show(self.next_step, tick.remaining_s)
        self._show_position()

    def _sync_remaining(self) -> None:
        """Seconds left in the block now (ticks come on whole seconds; a pause may not)."""
        state = self.session.state
        if state.step is None or not self.started:
            return
        left = state.block_remaining_s
        self.remaining_s = max(math.ceil(left - 1e-6), 0)
        self.query_one(BigCountdown).seconds = self.remaining_s
        self.query_one(NextUp).show(self.next_step, self.remaining_s)

    def _on_unconfirmed(self, event: CommandUnconfirmed) -> None:
        self._warn(f"! {event.command} not confirmed: {event.reason}", event.command)
        if is_rejection(event):
            self.console.show_problem(problem_for_rejection(event))

    def _on_fault(self, fault: Fault) -> None:
        link = self.query_one(LinkState)
        if fault.kind is FaultKind.LINK_LOST:
            link.set_status(LinkStatus.RECONNECTING)
        elif fault.kind.link_down:
            link.set_status(LinkStatus.LOST)
        if fault.fatal:
            self.fatal_fault = fault
            self._warn(f"! {fault.message}")
        else:
            self.console.show_problem(problem_for_fault(fault))

    def _show_block(self, step: Step, next_step: Step | None, remaining_s: int) -> None:
        self.step, self.next_step, self.remaining_s = step, next_step, remaining_s
        countdown = self.query_one(BigCountdown)
        countdown.seconds = remaining_s
        countdown.count = None
        countdown.remove_class("-counting")
        for kind_class in [c for c in countdown.classes if c.startswith("-kind-")]:
            countdown.remove_class(kind_class)
        countdown.add_class(f"-kind-{step.kind.value}")
        total = len(self.program.steps)
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" {step.kind.label} ", style="bold reverse")
        title.append(f" {step.title}", style="bold")
        title.append(f"  ·  block {step.index + 1}/{total}  ·  facing the {step.facing.value}")
        self.query_one("#block-title", Static).update(title)
        self.query_one(CueBanner).show(step)
        next_up = self.query_one(NextUp)
        next_up.remove_class("-soon")
        next_up.show(next_step, remaining_s)
        self._show_position()

    def _show_position(self) -> None:
        """Where the session is in the program's own time line (extend and skip included)."""
        step = self.step
        into_block = min(max(step.duration_s - self.remaining_s, 0), step.duration_s)
        self.query_one(ProgramProgress).show(step.start_s + into_block)

    # -- what the screen says -----------------------------------------------------------------

    def _show_status(self) -> None:
        style = ""
        if self.ending:
            text, style = "STOPPING THE BELT", "-ending"
        elif self.waiting_for_go:
            text, style = "READY · press enter to start the belt", "-ready"
        elif not self.started:
            text = "connecting to the device"
        elif (state := self.session.state).engine is EngineState.PAUSED:
            reason = state.hold or "paused by the operator"
            text, style = f"PAUSED · {reason} · space resumes", "-paused"
        else:
            text = "running"
        if (text, style) == self._status_shown:
            return  # asked after every engine event: restyle and redraw only on a change
        self._status_shown = (text, style)
        self.status_text = text
        status = self.query_one("#run-status", Static)
        for name in ("-ready", "-paused", "-ending"):
            status.set_class(name == style, name)
        status.update(text, layout=False)  # one line, always

    def _show_pace(self) -> None:
        state = self.session.state
        reading = PaceReading(
            target_speed=state.target_speed,
            target_incline=state.target_incline,
            telemetry=state.actual,
            elapsed_s=self.elapsed_s,
            remaining_s=self.program_remaining_s,
            live=state.link_up,
        )
        self.query_one(PacePanel).show(reading)

    def _show_mute(self) -> None:
        self.query_one("#mute-state", Static).update("MUTED" if self.console.muted else "")

    def _warn(self, text: str, command: Command | None = None) -> None:
        self.warning, self.warning_for = text, command
        self._show_message_line()

    def show_notice(
        self, text: str, *, severity: str = "information", timeout: float | None = None
    ) -> None:
        """A notice on the message line for ``timeout`` seconds (a warning there comes first):
        a line of its own covers nothing, where a toast hid the pace panel and the link."""
        mark = "" if severity == "information" else "! "
        self.notice = f"{mark}{text}".replace("\n", " · ")
        if self._notice_timer is not None:
            self._notice_timer.stop()
        self._notice_timer = self.set_timer(timeout or NOTICE_S, self._clear_notice)
        self._show_message_line()

    def _clear_notice(self) -> None:
        self.notice, self._notice_timer = "", None
        self._show_message_line()

    def _show_message_line(self) -> None:
        line = self.query_one("#warning", Static)
        line.update(self.warning or self.notice, layout=False)  # one line, always
        line.set_class(bool(self.warning), "-shown")
        line.set_class(not self.warning and bool(self.notice), "-notice")

    # -- operator actions ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        running = self.started and not self.ending
        state = self.session.state.engine
        if action == "go":
            return self.waiting_for_go
        if action in ("pause_resume", "extend"):
            return running
        if action in ("skip", "nudge"):
            return running and state is EngineState.RUNNING
        return True

    def action_go(self) -> None:
        if self.waiting_for_go:
            self.waiting_for_go = False
            self.console.give_go()
            self._show_status()
            self.refresh_bindings()

    def action_pause_resume(self) -> None:
        session = self.session
        state = session.state.engine
        if state is EngineState.RUNNING:
            session.pause()
        elif state is EngineState.PAUSED:
            link = self.query_one(LinkState).status
            if link in (LinkStatus.RECONNECTING, LinkStatus.LOST):
                self.notify(
                    "The link to the treadmill is down: resume once it shows connected.",
                    severity="warning",
                    timeout=5,
                )
                return
            session.resume()
        self._show_status()
        self._show_pace()

    def action_skip(self) -> None:
        self.session.skip()

    def action_extend(self) -> None:
        self.session.extend(15)

    def action_nudge(self, direction: int) -> None:
        """+/- 0.1 mph on this block, refused at the edge of the block's band."""
        refused = self.session.nudge_speed(NUDGE_MPH * direction)
        if refused is not None:
            self.notify(f"{refused[0].upper()}{refused[1:]}.", severity="warning", timeout=3)
            return
        self._show_pace()

    def show_mute(self) -> None:
        self._show_mute()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop-button":
            event.stop()
            self.console.action_stop_belt()
