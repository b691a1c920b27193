"""Playing a program headless, from the terminal: the person's go, the signals that stop the
belt, the printer, the speaker, the recording, and the exit status a script can read.

``retrotread run`` and ``retrotread next --start`` both come here with a :class:`RunOptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.errors import RetrotreadError
from retrotread.exits import (
    EXIT_FAULT,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGNALS,
    EXIT_STOPPED,
)
from retrotread.options import RunOptions
from retrotread.vocabulary import EngineState, Outcome, StopReason

if TYPE_CHECKING:
    from retrotread.events import SessionHandle, SessionSummary
    from retrotread.program import Program
    from retrotread.recording import Recording


def ready_line(session: SessionHandle) -> str:
    """What the person confirms with Enter: which program, on which treadmill."""
    from retrotread.program import format_duration

    program = session.program
    return (
        f"Ready: {program.name} ({format_duration(program.total_s)}, "
        f"{len(program.steps)} blocks) on {session.state.device}.\n"
        "Press Enter to start the belt (Ctrl-C to cancel)."
    )


class TerminalOperator:
    """The person at the terminal in an attended headless run.

    Enter gives the go before the belt starts, and resumes a program that is paused or held
    (console stop, safety key, lost link) — a person's confirmation, never an automatic one.
    """

    def __init__(self, session: SessionHandle) -> None:
        self.session = session
        self._go: asyncio.Future[bool] | None = None

    def attach(self) -> None:
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self._on_line)

    def detach(self) -> None:
        asyncio.get_running_loop().remove_reader(sys.stdin.fileno())

    def _on_line(self) -> None:
        line = sys.stdin.readline()
        if not line:  # end of input: nobody is there any more
            self.detach()
            if self._go is not None and not self._go.done():
                self._go.set_result(False)
            return
        state = self.session.state
        if self._go is not None and not self._go.done():
            self._go.set_result(True)
        elif state.hold or state.engine is EngineState.PAUSED:
            print("Resuming.", flush=True)
            self.session.resume()

    async def go(self) -> bool:
        print(ready_line(self.session), flush=True)
        self._go = asyncio.get_running_loop().create_future()
        stopped = asyncio.ensure_future(self.session.wait_stop_requested())
        try:
            waiting: set[asyncio.Future[object]] = {self._go, stopped}  # type: ignore[arg-type]
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            return self._go in done and self._go.result()
        finally:
            stopped.cancel()


async def play(
    options: RunOptions, program: Program, recording: Recording | None = None
) -> SessionSummary:
    """Play ``program`` until the session ends with the belt stopped (or said not to be)."""
    from retrotread.clinic.setup import clinic_for
    from retrotread.floor.publisher import open_link
    from retrotread.headless import HeadlessPrinter
    from retrotread.session import Session

    clock = LoopClock()
    treadmill = open_treadmill(options.device, clock=clock)
    clinic = clinic_for(recording.store, recording.client) if recording else None
    session = Session(
        program,
        treadmill,
        clock,
        unattended=not options.attended,
        allow_blind=options.allow_blind,
        caps=clinic.caps if clinic else None,  # the client's limits, on top of the profile
    )
    if clinic is not None:
        clinic.show()  # before the start
        clinic.attach(session, clock)  # their heart-rate strap, if they have one
    operator = TerminalOperator(session) if options.attended else None
    if operator is not None:
        session.go = operator.go
        operator.attach()
    if recording is not None:
        recording.attach(session)
    floor = open_link(options.floor, options.record.client)  # --mqtt: on the gym floor
    if floor is not None:
        floor.attach(session)
    interactive = sys.stdout.isatty() and not options.rehearse
    if not options.quiet:
        session.subscribe(
            HeadlessPrinter(
                session,
                live_status=interactive,
                periodic_status=not options.rehearse,
                resume_hint=options.attended,
            )
        )

    loop = asyncio.get_running_loop()
    told = False

    def on_signal(signum: signal.Signals) -> None:
        nonlocal told
        if not session.stop_requested:
            session.stop(EXIT_SIGNALS[signum])
        elif not told:
            # Asked again: the stop is under way and nothing may cut it short (that is how a
            # belt was left running). Only SIGKILL abandons it, and then nothing is sent.
            told = True
            with contextlib.suppress(OSError):
                print(
                    "Stopping the belt: waiting for the treadmill to confirm "
                    "(only SIGKILL abandons this, and the belt may then keep running).",
                    flush=True,
                )

    for signum in EXIT_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    speaker = None
    if options.speech is not None and not options.rehearse:
        from retrotread.speech.options import print_notice
        from retrotread.speech.speaker import Speaker

        speaker = await Speaker.open(options.speech, clock, notice=print_notice)
        speaker.attach(session)
    try:
        return await session.run()
    finally:
        if speaker is not None:  # "program complete" or a STOP is still being said
            await speaker.close()
        if floor is not None:
            await floor.close()
        for signum in EXIT_SIGNALS:
            loop.remove_signal_handler(signum)
        if operator is not None:
            operator.detach()


def run_headless(options: RunOptions, program: Program | None = None) -> int:
    """``retrotread run``: checks everything before the belt moves, plays, prints the summary,
    records, and returns the exit status."""
    from retrotread.headless import format_summary
    from retrotread.program import find_program
    from retrotread.recording import open_recording

    if options.rehearse and not options.device.startswith("sim://"):
        raise RetrotreadError(
            f"--rehearse runs on the virtual clock and needs the in-process simulator "
            f"(sim://...), not {options.device}"
        )
    if options.attended and not sys.stdin.isatty():
        raise RetrotreadError(
            "no one at the keyboard to give the go: pass --unattended to start the belt "
            "without a person (every change is still announced), or --rehearse"
        )
    # Fail on a bad program or URL before anything connects.
    program = program or find_program(options.program)
    open_treadmill(options.device)
    recording = open_recording(options.record, rehearse=options.rehearse, planned=options.plan)
    summary = run(play(options, program, recording), virtual=options.rehearse)
    hung_up = summary.reason is StopReason.SIGNAL_HUP  # no terminal left to print to or ask
    with contextlib.suppress(OSError):
        print(format_summary(summary))
    if recording is not None:
        ask = not options.unattended and sys.stdin.isatty() and not hung_up
        recording.conclude(summary, ask=ask)
    return exit_status(summary)


def exit_status(summary: SessionSummary) -> int:
    if summary.outcome in (Outcome.COMPLETED, Outcome.UNCONFIRMED):
        return EXIT_OK
    if summary.outcome is Outcome.INTERRUPTED:
        by_reason = {reason: 128 + signum for signum, reason in EXIT_SIGNALS.items()}
        return by_reason.get(summary.reason or StopReason.SIGNAL_INT, EXIT_SIGINT)
    if summary.outcome is Outcome.FAULT:
        return EXIT_FAULT
    return EXIT_STOPPED
