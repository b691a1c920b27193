"""The operator console: a Textual app on the same engine as the headless runner.

The app owns at most one session at a time. The session runs as a plain asyncio task, not a
Textual worker, so that nothing Textual does on the way out can cancel it before it has sent
stop: ``q`` stops the belt and quits once the session has ended; STOP (``s``, Escape, the
button) stops at once from every screen; and however the app closes — an exception in the UI
included — ``on_unmount`` stops the session and waits for it before the process goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import termios
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from retrotread.clock import Clock, LoopClock
from retrotread.drivers.registry import DEFAULT_DEVICE, open_treadmill
from retrotread.errors import RetrotreadError
from retrotread.events import StopReason
from retrotread.profiles import all_profiles
from retrotread.program import Program, builtin_programs
from retrotread.session import STOP_WAIT_S, UNATTENDED_HOLD_LIMIT_S, Session, SessionSummary
from retrotread.speech import Speaker, SpeechSettings
from retrotread.tui.devices import DeviceChoice, Scanner, offered_devices
from retrotread.tui.messages import AwaitingGo, SessionFailed, SessionFinished
from retrotread.tui.screens.error import (
    Choice,
    ErrorModal,
    Problem,
    problem_for_connect,
    problem_for_ending,
)
from retrotread.tui.screens.run import RunScreen
from retrotread.tui.screens.start import StartScreen
from retrotread.tui.screens.summary import OutcomeRecorder, SummaryScreen
from retrotread.tui.screens.walker import WalkerScreen

log = logging.getLogger(__name__)


def default_grace_s() -> float:
    """How long closing the console waits for a session to stop the belt and end: past the
    stop path's own bound (the hold limit), so the session always ends first."""
    longest_command = max(p.confirm.command_timeout_s for p in all_profiles())  # yours too
    return UNATTENDED_HOLD_LIMIT_S + longest_command + STOP_WAIT_S + 1.0


class ConsoleApp(App[SessionSummary | None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "retrotread"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop_belt", "STOP", show=False),
        Binding("escape", "stop_belt", "STOP", show=False),
        Binding("q", "quit", "Quit", show=False),
        Binding("w", "walker_view", "Walker view", show=False),
        Binding("ctrl+q,ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        *,
        program: Program | None = None,
        device: str = DEFAULT_DEVICE,
        go_straight_to_run: bool = False,
        clock: Clock | None = None,
        on_outcome: OutcomeRecorder | None = None,
        on_session_start: Callable[[Session], None] | None = None,
        scanner: Scanner | None = None,
        programs: Sequence[Program] | None = None,
        devices: Sequence[DeviceChoice] | None = None,
        muted: bool = False,
        shutdown_grace_s: float | None = None,
        walker: bool = False,
        speech: SpeechSettings | None = None,
    ) -> None:
        super().__init__()
        self.initial_program = program
        self.device = device
        self.go_straight_to_run = go_straight_to_run and program is not None
        self.clock: Clock = clock or LoopClock()
        self.on_outcome = on_outcome
        self.on_session_start = on_session_start
        self.scanner = scanner
        self.programs = list(programs) if programs is not None else builtin_programs()
        self.devices = list(devices) if devices is not None else offered_devices()
        self.muted = muted
        self.walker = walker  # open each session in the walker view
        self.speech = speech  # None: no spoken cues (tests, --rehearse)
        self.speaker: Speaker | None = None
        self.shutdown_grace_s = default_grace_s() if shutdown_grace_s is None else shutdown_grace_s
        self.session: Session | None = None
        self.run_screen: RunScreen | None = None
        self.last_summary: SessionSummary | None = None
        self.bells = 0
        self._session_task: asyncio.Task[None] | None = None
        self._go: asyncio.Future[bool] | None = None
        self._quitting = False
        self._starting = False  # a session is being set up (run screen not shown yet)
        #: the summary (and its problem) of a session that ended under the walker view: shown
        #: once the operator leaves that view, so the rear screen never shows the form
        self._summary_waiting: tuple[SessionSummary, Problem | None] | None = None

    # -- screens ------------------------------------------------------------------------------

    async def on_mount(self) -> None:
        if self.speech is not None:
            await self._open_speaker(self.speech)
        if self.go_straight_to_run and self.initial_program is not None:
            self.start_session(self.initial_program, self.device)
        else:
            await self.push_screen(self._start_screen())

    def _start_screen(self) -> StartScreen:
        return StartScreen(
            self.programs,
            self.devices,
            device_url=self.device,
            scanner=self.scanner,
            program=self.initial_program,
        )

    async def _show_screen(self, screen: Screen[None]) -> None:
        await self._close_modals()
        if len(self.screen_stack) > 1:
            await self.switch_screen(screen)
        else:
            await self.push_screen(screen)

    async def _close_modals(self) -> None:
        while isinstance(self.screen, ErrorModal | WalkerScreen):
            await self.pop_screen()

    async def show_start(self) -> None:
        await self._show_screen(self._start_screen())

    def show_problem(self, problem: Problem) -> None:
        """A modal with what happened and what to do; one per kind of problem at a time.

        A hold replaces an open rejection (a refused start is both): the hold says more.
        """
        if any(
            isinstance(screen, ErrorModal) and screen.problem.key == problem.key
            for screen in self.screen_stack
        ):
            return
        top = self.screen
        if isinstance(top, ErrorModal) and top.problem.key == "rejected" and problem.key == "hold":
            top.dismiss(Choice.OK)
        self.push_screen(ErrorModal(problem), self._on_problem_choice)

    def close_problem(self, key: str) -> None:
        if isinstance(self.screen, ErrorModal) and self.screen.problem.key == key:
            self.screen.dismiss(Choice.OK)

    def _on_problem_choice(self, choice: Choice | None) -> None:
        if choice is Choice.RESUME and self.run_screen is not None:
            self.run_screen.action_pause_resume()

    # -- the session --------------------------------------------------------------------------

    def session_live(self) -> bool:
        return self._session_task is not None and not self._session_task.done()

    def start_session(self, program: Program, device: str) -> None:
        """Open the device's driver and show the run screen; the belt waits for the go.

        Raises :class:`~retrotread.errors.RetrotreadError` for a bad device URL or profile.
        The run screen comes up on the app's next turn: the screen asking (the start screen)
        is the one being replaced, and a screen cannot wait for its own replacement.
        """
        if self.session_live() or self._starting:
            raise RetrotreadError("a session is already running")
        treadmill = open_treadmill(device, clock=self.clock)
        session = Session(program, treadmill, self.clock, go=self._wait_for_go)
        screen = RunScreen(session)
        session.subscribe(screen.post_engine_event)
        if self.on_session_start is not None:
            self.on_session_start(session)  # e.g. the session store's recorder
        if self.speaker is not None:
            self.speaker.attach(session)
        self.session, self.run_screen, self.device = session, screen, device
        self.initial_program = program
        self._starting = True
        self.call_later(self._begin_session, session, screen, device)

    async def _begin_session(self, session: Session, screen: RunScreen, device: str) -> None:
        try:
            await self._show_screen(screen)
            if self.walker:
                await self._open_walker(session)
            self._session_task = asyncio.create_task(self._play(session, device), name="session")
        finally:
            self._starting = False

    async def _play(self, session: Session, device: str) -> None:
        try:
            summary = await session.run()
        except RetrotreadError as err:  # the device could not be reached: nothing moved
            self.post_message(SessionFailed(err, device))
            return
        self.last_summary = summary
        self.post_message(SessionFinished(summary))

    async def _wait_for_go(self) -> bool:
        self._go = asyncio.get_running_loop().create_future()
        if self.run_screen is not None:
            self.run_screen.post_message(AwaitingGo())
        for screen in self.screen_stack:
            if isinstance(screen, WalkerScreen):
                screen.awaiting_go()
        return await self._go

    def give_go(self) -> None:
        self._answer_go(True)

    def _answer_go(self, go: bool) -> None:
        if self._go is not None and not self._go.done():
            self._go.set_result(go)

    async def on_session_finished(self, message: SessionFinished) -> None:
        if self._quitting:
            self.exit(message.summary)
            return
        fault = self.run_screen.fatal_fault if self.run_screen else None
        problem = problem_for_ending(message.summary, fault)
        if isinstance(self.screen, WalkerScreen):  # the rear screen: the walker's view stays
            self._summary_waiting = (message.summary, problem)
            return
        await self._show_summary(message.summary, problem)

    async def _show_summary(self, summary: SessionSummary, problem: Problem | None) -> None:
        self.clear_notifications()  # nothing of the run stays over the summary
        await self._show_screen(SummaryScreen(summary, self.on_outcome))
        if problem is not None:
            self.show_problem(problem)

    async def on_session_failed(self, message: SessionFailed) -> None:
        if self._quitting:
            self.exit(None)
            return
        await self.show_start()
        self.show_problem(problem_for_connect(message.error, message.device))

    # -- operator actions anywhere ------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_belt":
            return self.session_live()
        return True

    def action_stop_belt(self) -> None:
        """STOP: the belt stops at once and the program ends; nothing to confirm."""
        if self.session is None or not self.session_live():
            return
        self.session.stop(StopReason.OPERATOR)
        self._answer_go(False)

    async def action_quit(self) -> None:
        """Quit; a running belt is stopped first and the app leaves once the session ended."""
        if self.session_live():
            self._quitting = True
            self.action_stop_belt()
            return
        self.exit(self.last_summary)

    def action_toggle_mute(self) -> None:
        self.muted = not self.muted
        if self.speaker is not None:
            self.speaker.muted = self.muted
        if self.run_screen is not None and self.run_screen.is_attached:
            self.run_screen.show_mute()

    async def action_walker_view(self) -> None:
        """Only the big countdown and the cue, for a screen where the walker looks."""
        live = self.session is not None and self.session_live()
        if live and self.session is not None and not isinstance(self.screen, WalkerScreen):
            await self._open_walker(self.session)

    async def _open_walker(self, session: Session) -> None:
        view = WalkerScreen(session)
        if self.run_screen is not None and self.run_screen.waiting_for_go:
            view.awaiting_go()
        await self.push_screen(view, self._walker_closed)

    def _walker_closed(self, _: None) -> None:
        """Back to the operator's layout: a session that ended meanwhile shows its summary."""
        waiting, self._summary_waiting = self._summary_waiting, None
        if waiting is not None:
            self.call_later(self._show_summary, *waiting)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """During a session, notices go to the run screen's message line, not into toasts
        over the pace panel and the link status."""
        run_screen = self.run_screen
        if run_screen is not None and run_screen.is_attached:
            run_screen.show_notice(message, severity=severity, timeout=timeout)
            return
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    async def _open_speaker(self, settings: SpeechSettings) -> None:
        def notice(message: str) -> None:
            self.notify(message, severity="warning", timeout=8)

        try:
            self.speaker = await Speaker.open(settings, self.clock, notice=notice, ring=self.bell)
        except RetrotreadError as err:
            notice(f"cues will not be spoken: {err}")
            return
        self.speaker.muted = self.muted

    def ring(self) -> None:
        """The audible half of the 3-2-1 (the terminal bell), unless muted."""
        if not self.muted:
            self.bells += 1
            self.bell()

    async def on_unmount(self) -> None:
        await self.end_session(StopReason.ERROR, "the console closed")
        if self.speaker is not None:
            await self.speaker.close(drain_s=3.0)

    async def end_session(
        self, reason: StopReason = StopReason.OPERATOR, detail: str = ""
    ) -> SessionSummary | None:
        """Stop a live session and wait (bounded) until it has stopped the belt and ended."""
        task = self._session_task
        if task is None:
            return self.last_summary
        if not task.done() and self.session is not None:
            self.session.stop(reason, detail)
            self._answer_go(False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self.shutdown_grace_s)
        return self.last_summary


#: The signals that close the console, each after stopping the belt.
CLOSING_SIGNALS = {
    signal.SIGTERM: StopReason.SIGNAL_TERM,
    signal.SIGHUP: StopReason.SIGNAL_HUP,
    signal.SIGQUIT: StopReason.SIGNAL_QUIT,
}
#: After a hang-up, once the session has ended, the console gets this long to close.
HANG_UP_EXIT_S = 5.0
TERMINAL_CHECK_S = 1.0


def _detach_from_terminal() -> None:
    """The terminal is gone: every write to it fails from now on, and Textual's writer thread
    dies on the first such failure, after which its exit blocks forever on a full queue.
    Point the standard streams at /dev/null so the console can still close normally."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def _leave_if_stuck(app: ConsoleApp) -> None:
    """After a hang-up, make sure the process ends once the session has stopped the belt.

    Textual's shutdown writes to the terminal and can block the event loop for good once the
    terminal is gone, so this watches from a thread: when the session is over (or never
    began) and the console has not closed a few seconds later, the process exits."""
    task = app._session_task

    def exit_when_stuck() -> None:
        deadline = time.monotonic() + app.shutdown_grace_s
        while task is not None and not task.done() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(HANG_UP_EXIT_S)
        log.error("the console did not close after its terminal did: exiting")
        logging.shutdown()
        os._exit(128 + signal.SIGHUP)

    threading.Thread(target=exit_when_stuck, name="hang-up exit", daemon=True).start()


async def _watch_terminal(fd: int, hung_up: Callable[[], None]) -> None:
    """A terminal can vanish without a SIGHUP (a console with no controlling terminal, a pty
    whose other end was closed): then every terminal call fails with EIO. Look once a second."""
    while True:
        await asyncio.sleep(TERMINAL_CHECK_S)
        try:
            termios.tcgetattr(fd)
        except (termios.error, OSError):
            log.warning("the terminal is gone: stopping the belt and closing the console")
            hung_up()
            return


async def run_console(app: ConsoleApp) -> SessionSummary | None:
    """Run the console until it closes; SIGTERM, SIGHUP (the terminal or SSH session closed),
    SIGQUIT and a terminal that vanishes stop the belt and quit like ``q``."""
    loop = asyncio.get_running_loop()
    background: set[asyncio.Task[None]] = set()
    hung_up: list[signal.Signals] = []

    def in_background(coroutine: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = loop.create_task(coroutine)
        background.add(task)
        task.add_done_callback(background.discard)
        return task

    def on_signal(signum: signal.Signals) -> None:
        if signum is signal.SIGHUP and not hung_up:
            hung_up.append(signum)
            _detach_from_terminal()
            _leave_if_stuck(app)
        if app.session is not None and app.session_live():
            app.session.stop(CLOSING_SIGNALS[signum])
        app.call_later(app.action_quit)

    for signum in CLOSING_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    watch = None
    if os.isatty(1):
        watch = in_background(_watch_terminal(1, lambda: on_signal(signal.SIGHUP)))
    try:
        return await app.run_async()
    finally:
        if watch is not None:
            watch.cancel()
        for signum in CLOSING_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        await app.end_session(StopReason.ERROR, "the console closed")


__all__ = ["ConsoleApp", "run_console"]
