"""``retrotread tui PROGRAM --serve``: one session, served to browsers as views.

This process owns the one session on the one treadmill (printed headless in the terminal)
and serves it: an operator's view that controls it once the page shows the console's secret,
and a read-only walker view. Closing the server stops the belt: Ctrl-C, SIGTERM, SIGHUP (the
terminal or SSH session closed) and SIGQUIT all send stop and wait for the session to end
before the process leaves, and there are no other processes to leave behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from retrotread.clock import LoopClock
from retrotread.drivers.registry import open_treadmill
from retrotread.errors import RetrotreadError
from retrotread.events import StopReason
from retrotread.floor.publisher import open_link
from retrotread.headless import HeadlessPrinter, format_summary
from retrotread.options import ConsoleOptions, ServeOptions
from retrotread.profiles import all_profiles
from retrotread.program import Program
from retrotread.recording import Recording, open_recording
from retrotread.session import (
    STOP_WAIT_S,
    Outcome,
    Session,
    SessionSummary,
)
from retrotread.speech import Speaker
from retrotread.speech.engine import SpeechSettings
from retrotread.web.access import (
    Secrets,
    check_bind,
    new_token,
    origin_of,
    password_file_warning,
    public_name,
    read_password_file,
    tls_context,
)
from retrotread.web.control import Controls, GoGate
from retrotread.web.server import Limits, ViewServer
from retrotread.web.view import SessionView

EXIT_STOPPED = 3
EXIT_FAULT = 4

#: The signals that close the server; each stops the belt first.
CLOSING_SIGNALS = {
    signal.SIGINT: (StopReason.SIGNAL_INT, "Ctrl-C"),
    signal.SIGTERM: (StopReason.SIGNAL_TERM, "SIGTERM"),
    signal.SIGHUP: (StopReason.SIGNAL_HUP, "hang-up (SIGHUP): the terminal closed"),
    signal.SIGQUIT: (StopReason.SIGNAL_QUIT, "SIGQUIT"),
}


def say(text: str, *, err: bool = False) -> None:
    """Print, unless the terminal is gone (after a hang-up the session must go on stopping)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _detach_terminal() -> None:
    """The terminal hung up: further output goes nowhere instead of failing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def stop_grace_s(session: Session) -> float:
    """How long closing waits for the session to stop the belt and end: longer than the
    session keeps trying to stop (up to its hold limit), so it is never cut short."""
    longest_command = max(float(p.confirm.command_timeout_s) for p in all_profiles())
    return session.hold_limit_s + STOP_WAIT_S + 2 * longest_command + 5.0


class ServeSettings:
    """The serve options, checked before anything connects or listens."""

    def __init__(self, args: ServeOptions, *, walker_first: bool = False) -> None:
        self.host: str = args.host
        self.port: int = args.port
        if not 0 <= self.port <= 65535:
            raise RetrotreadError(f"--port {self.port} is not a port (0-65535)")
        if args.max_views < 1:
            raise RetrotreadError("--max-views must be at least 1")
        check_bind(self.host, args.allow_remote)
        self.remote = bool(args.allow_remote)
        self.tls = tls_context(args.certfile, args.keyfile)
        self.password = read_password_file(args.password_file) if args.password_file else None
        self.password_warning = (
            password_file_warning(args.password_file) if args.password_file else None
        )
        self.extra_origins: list[str] = list(args.allow_origin)
        self.limits = Limits(max_views=args.max_views)
        self.walker_first = walker_first
        self.qr = sys.stdout.isatty()


def serve_console(options: ConsoleOptions, serve: ServeOptions, program: Program) -> int:
    settings = ServeSettings(serve, walker_first=options.walker)
    return asyncio.run(_serve(options, program, settings))


async def _serve(options: ConsoleOptions, program: Program, settings: ServeSettings) -> int:
    loop = asyncio.get_running_loop()
    clock = LoopClock()
    treadmill = open_treadmill(options.device, clock=clock)
    session = Session(program, treadmill, clock)
    view = SessionView(session)
    session.subscribe(view)
    gate = GoGate(session, view)
    session.go = gate.wait
    secrets = Secrets(new_token(), settings.password)
    server = ViewServer(
        view,
        Controls(session, gate, view),
        secrets,
        host=settings.host,
        port=settings.port,
        tls=settings.tls,
        extra_origins=settings.extra_origins,
        limits=settings.limits,
        notice=lambda message: say(f"retrotread: {message}"),
    )
    await server.start()
    recording: Recording | None = None
    try:
        recording = open_recording(options.record)
    except RetrotreadError:
        await server.stop()
        raise
    if recording is not None:
        recording.attach(session)
    floor = open_link(options.floor, options.record.client)  # --mqtt: on the gym floor
    if floor is not None:
        floor.attach(session)
    session.subscribe(HeadlessPrinter(session, live_status=False, periodic_status=True))
    speaker = await _open_speaker(options, session, clock)
    _announce(program, session, server, secrets, settings)

    closing = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        if signum is signal.SIGHUP:
            _detach_terminal()
        received.append(signum)
        closing.set()
        if not session_task.done():
            reason, words = CLOSING_SIGNALS[signum]
            if not session.stop_requested:
                session.stop(reason, f"{words}: the server is closing")
            gate.answer(False)
            say(f"retrotread: {words}: stopping the belt before the server closes")

    session_task = asyncio.create_task(session.run(), name="served-session")
    for signum in CLOSING_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    summary: SessionSummary | None = None
    try:
        summary = await _run_until_closed(session_task, closing, view, stop_grace_s(session))
        return _exit_status(summary, received)
    finally:
        if not session_task.done():  # an error in this function: still stop the belt
            session.stop(StopReason.ERROR, "the server closed")
            gate.answer(False)
            with contextlib.suppress(TimeoutError, RetrotreadError):
                summary = await asyncio.wait_for(
                    asyncio.shield(session_task), stop_grace_s(session)
                )
        for signum in CLOSING_SIGNALS:
            loop.remove_signal_handler(signum)
        await server.stop()
        if speaker is not None:
            await speaker.close()
        if floor is not None:
            await floor.close()
        if recording is not None:
            if summary is not None:
                with contextlib.suppress(OSError):
                    recording.conclude(summary, ask=False)
            else:
                recording.store.close()


async def _run_until_closed(
    session_task: asyncio.Task[SessionSummary],
    closing: asyncio.Event,
    view: SessionView,
    grace_s: float,
) -> SessionSummary:
    """Serve while the session plays; after it ends, keep showing its summary until closed."""
    closed = asyncio.create_task(closing.wait())
    try:
        await asyncio.wait({session_task, closed}, return_when=asyncio.FIRST_COMPLETED)
        if not session_task.done():  # closing: the session is stopping the belt
            try:
                summary = await asyncio.wait_for(asyncio.shield(session_task), grace_s)
            except TimeoutError:
                say("retrotread: the session did not end in time: check the treadmill", err=True)
                raise
        else:
            try:
                summary = session_task.result()
            except RetrotreadError as err:  # the device could not be reached: nothing moved
                view.failed(str(err))
                raise
        view.ended(summary)
        say(format_summary(summary))
        if not closing.is_set():
            say("retrotread: session over; the views show its summary. Ctrl-C closes the server.")
            await closed
        return summary
    finally:
        closed.cancel()


def _exit_status(summary: SessionSummary, received: list[signal.Signals]) -> int:
    if not summary.belt_stopped:
        return EXIT_FAULT
    if summary.outcome is Outcome.INTERRUPTED and received:
        return 128 + int(received[0])
    if summary.outcome is Outcome.FAULT:
        return EXIT_FAULT
    if summary.outcome is Outcome.STOPPED:
        return EXIT_STOPPED
    return 0


async def _open_speaker(
    options: ConsoleOptions, session: Session, clock: LoopClock
) -> Speaker | None:
    if options.mute:
        return None
    try:
        speaker = await Speaker.open(
            options.speech or SpeechSettings(),
            clock,
            notice=lambda m: say(f"retrotread: {m}", err=True),
        )
    except RetrotreadError as err:
        say(f"retrotread: cues will not be spoken: {err}", err=True)
        return None
    speaker.attach(session)
    return speaker


def _announce(
    program: Program,
    session: Session,
    server: ViewServer,
    secrets: Secrets,
    settings: ServeSettings,
) -> None:
    base = origin_of(server.scheme, public_name(settings.host), server.port)
    operator = f"{base}/#token={secrets.token}"
    walker = f"{base}/walker"
    lines = [
        f"retrotread: serving '{program.name}' on {session.treadmill.name}: one session, "
        "every page a view onto it",
        f"  operator (controls the belt; keep this link private): {operator}",
        f"  walker view (read-only, no secret):                   {walker}",
    ]
    if settings.password is not None:
        lines.append("  the operator's view also opens with the password from --password-file")
    lines.append(f"  pages accepted from: {', '.join(sorted(server.origins.origins))}")
    if settings.walker_first:
        lines.append(f"serving the walker view on {walker}")
    lines.append("Ctrl-C (or closing this terminal) stops the belt and closes the server.")
    say("\n".join(lines))
    if settings.remote:
        say(
            "retrotread: WARNING: listening beyond this machine: anyone on the network can "
            "open the walker view, and anyone with the link or the password can drive the belt"
            + ("" if settings.tls else "; without TLS the secret crosses the network in clear"),
            err=True,
        )
    if settings.password_warning:
        say(f"retrotread: WARNING: {settings.password_warning}", err=True)
    if settings.qr:
        _print_qr(operator)


def _print_qr(link: str) -> None:
    """The operator's link as a QR code in the terminal, for a tablet's camera."""
    try:
        import segno
    except ImportError:  # optional: the link is printed anyway
        return
    with contextlib.suppress(OSError, ValueError):
        segno.make(link, error="l").terminal(compact=True)
        sys.stdout.flush()
