"""The ``retrotread`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from retrotread import __version__
from retrotread.clock import LoopClock, run
from retrotread.commands import probe, records, scan
from retrotread.drivers.registry import DEFAULT_DEVICE, open_treadmill
from retrotread.errors import DeviceError, ProfileError, RetrotreadError, SafetyError
from retrotread.program.formats import command as program_files
from retrotread.speech.options import add_speech_options, settings_from_args, speaker_for_run
from retrotread.trace import add_trace_option
from retrotread.tui.command import add_tui_parser, cmd_tui, default_tui_args

# The session, its events and the headless printer load with the command that needs them:
# `retrotread --help`, `programs` and `check` start without them.
if TYPE_CHECKING:
    from retrotread.events import StopReason
    from retrotread.program import Program
    from retrotread.session import Session, SessionSummary

log = logging.getLogger("retrotread")

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3
EXIT_FAULT = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def exit_signals() -> dict[signal.Signals, StopReason]:
    """Each signal that ends a run stops the belt first; the exit status is 128 + its number."""
    from retrotread.events import StopReason

    return {
        signal.SIGINT: StopReason.SIGNAL_INT,
        signal.SIGTERM: StopReason.SIGNAL_TERM,
        signal.SIGHUP: StopReason.SIGNAL_HUP,
        signal.SIGQUIT: StopReason.SIGNAL_QUIT,
    }


EXIT_CODES = f"""exit status of `run`:
  {EXIT_OK}    the program completed and the belt stopped
  {EXIT_STOPPED}    stopped early (operator, console stop, safety key)
  {EXIT_FAULT}    a device or safety fault ended the session
  {EXIT_USAGE}    bad program file, device URL or arguments
  {EXIT_SIGINT}  interrupted with Ctrl-C (the belt was stopped first)
  {EXIT_SIGTERM}  terminated with SIGTERM (the belt was stopped first)
  129  hung up: SIGHUP, the terminal or SSH session closed (the belt was stopped first)
  131  SIGQUIT (the belt was stopped first)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrotread",
        description="Treadmill controller and interval runner for retro (backward) walking.",
        epilog="A PROGRAM is a built-in's name (see `retrotread programs`) or a .toml file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"retrotread {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run_parser = commands.add_parser(
        "run",
        help="play a program headless, printing blocks, cues and a summary",
        description="Play a program on a treadmill without the console. The belt is stopped "
        "at the end, on STOP, on Ctrl-C, SIGTERM, SIGHUP or SIGQUIT, and on any fault.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_parser.add_argument("program", metavar="PROGRAM", help="built-in name or .toml file")
    run_parser.add_argument(
        "--device", default=DEFAULT_DEVICE, metavar="URL", help="device URL (default: sim://)"
    )
    run_parser.add_argument(
        "--rehearse",
        action="store_true",
        help="run on the virtual clock against the in-process simulator (takes a blink)",
    )
    run_parser.add_argument(
        "--unattended",
        action="store_true",
        help="start the belt without a person's go (every change is still announced)",
    )
    run_parser.add_argument(
        "--allow-blind",
        action="store_true",
        help="with --unattended: play on a machine that cannot report its belt (nothing would "
        "notice it stop or run on)",
    )
    run_parser.add_argument("--quiet", action="store_true", help="print only the summary")
    add_speech_options(run_parser)
    records.add_recording_options(run_parser)
    add_trace_option(run_parser)

    check = commands.add_parser(
        "check",
        help="validate program files",
        description="Validate program files. With --device, also check that the treadmill "
        "can play every block as written (connects, reads its ranges, moves nothing).",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="program files (.toml)")
    check.add_argument(
        "--device",
        metavar="URL",
        help="check against this treadmill's profile and ranges (see `retrotread devices`)",
    )

    commands.add_parser("programs", help="list the built-in programs")
    show = commands.add_parser("show", help="show a program's blocks")
    show.add_argument("program", metavar="PROGRAM", help="built-in name or .toml file")
    commands.add_parser("devices", help="list device profiles and device URL schemes")
    scan.add_parser(commands)
    probe.add_parser(commands)
    records.add_commands(commands)
    program_files.add_parsers(commands)
    add_tui_parser(commands)
    return parser


# -- commands that only read ---------------------------------------------------------------------


def cmd_programs() -> int:
    from retrotread.program import builtin_programs, format_duration

    programs = builtin_programs()
    width = max(len(p.name) for p in programs)
    for program in programs:
        first = program.description.split(". ")[0].split(":")[0]
        print(
            f"{program.name:<{width}}  total {format_duration(program.total_s):>5}  "
            f"retro {format_duration(program.retro_s):>5}  {first}"
        )
    return EXIT_OK


async def device_problems(url: str, programs: Sequence[Program]) -> list[list[str]]:
    """What each program could only play on ``url`` by changing it (connects; moves nothing)."""
    from retrotread.safety import Governor

    async with open_treadmill(url, clock=LoopClock()) as treadmill:
        governor = Governor(treadmill.profile, treadmill.capabilities)
        return [governor.check(program.steps) for program in programs]


def default_problems(program: Program) -> list[str]:
    """Device-independent limits a program file cannot raise (the backward ceiling)."""
    from retrotread.drivers.base import Capabilities, Range
    from retrotread.profiles import get_profile
    from retrotread.safety import Governor

    profile = get_profile("simulator")
    ranges = Capabilities(
        speed=Range(profile.speed.min, profile.speed.max, profile.speed.increment),
        incline=Range(profile.incline.min, profile.incline.max, profile.incline.increment),
    )
    backward = [step for step in program.steps if step.kind.is_retro]
    return Governor(profile, ranges).check(backward)


def cmd_check(files: Sequence[str], device: str | None = None) -> int:
    from retrotread.program import ProgramError, find_program, format_duration

    status = EXIT_OK
    loaded: list[tuple[str, Program]] = []
    for name in files:
        try:
            loaded.append((name, find_program(name)))
        except ProgramError as err:
            for line in err.lines():
                print(line, file=sys.stderr)
            status = EXIT_USAGE
    if device is not None:
        problems = run(device_problems(device, [p for _, p in loaded]))
    else:
        problems = [default_problems(program) for _, program in loaded]
    for (name, program), found in zip(loaded, problems, strict=True):
        if found:
            where = f"on {device}" if device else "backward"
            print(f"{name}: cannot run as written {where}:", file=sys.stderr)
            for line in found:
                print(f"  {line}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        print(
            f"{name}: ok — '{program.name}', {len(program.steps)} blocks, "
            f"{format_duration(program.total_s)} total, {format_duration(program.retro_s)} retro"
        )
    return status


def program_lines(program: Program) -> list[str]:
    """A program's blocks as `show` prints them (and `import` previews them)."""
    from retrotread.headless import describe_step
    from retrotread.program import format_duration

    lines = [
        f"{program.name} — {format_duration(program.total_s)} total, "
        f"{format_duration(program.retro_s)} retro",
        program.description,
    ]
    for step in program.steps:
        lines.append(
            f"  {format_duration(step.start_s):>6}  {step.kind.label:<9} {step.title}: "
            f"{describe_step(step)} — {step.cue}"
        )
    return lines


def cmd_show(spec: str) -> int:
    from retrotread.program import find_program

    for line in program_lines(find_program(spec)):
        print(line)
    return EXIT_OK


def cmd_devices() -> int:
    from retrotread.commands.devices import cmd_devices as list_devices

    return list_devices()


# -- run -----------------------------------------------------------------------------------------


class TerminalOperator:
    """The person at the terminal in an attended headless run.

    Enter gives the go before the belt starts, and resumes a program that is paused or held
    (console stop, safety key, lost link) — a person's confirmation, never an automatic one.
    """

    def __init__(self, session: Session) -> None:
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
        from retrotread.scheduler import EngineState

        if self._go is not None and not self._go.done():
            self._go.set_result(True)
        elif self.session.holding or self.session.scheduler.state is EngineState.PAUSED:
            print("Resuming.", flush=True)
            self.session.resume()

    async def go(self) -> bool:
        print("Ready. Press Enter to start the belt (Ctrl-C to cancel).", flush=True)
        self._go = asyncio.get_running_loop().create_future()
        stopped = asyncio.ensure_future(self.session.scheduler.stop_requested.wait())
        try:
            waiting: set[asyncio.Future[object]] = {self._go, stopped}  # type: ignore[arg-type]
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            return self._go in done and self._go.result()
        finally:
            stopped.cancel()


async def play(
    args: argparse.Namespace,
    program: Program | None = None,
    recording: records.Recording | None = None,
) -> SessionSummary:
    from retrotread.headless import HeadlessPrinter
    from retrotread.program import find_program
    from retrotread.session import Session

    program = program or find_program(args.program)
    clock = LoopClock()
    treadmill = open_treadmill(args.device, clock=clock)
    attended = not (args.unattended or args.rehearse)
    session = Session(
        program, treadmill, clock, unattended=not attended, allow_blind=args.allow_blind
    )
    operator = TerminalOperator(session) if attended else None
    if operator is not None:
        session.go = operator.go
        operator.attach()
    if recording is not None:
        recording.attach(session)
    interactive = sys.stdout.isatty() and not args.rehearse
    if not args.quiet:
        session.subscribe(
            HeadlessPrinter(
                session,
                live_status=interactive,
                periodic_status=not args.rehearse,
                resume_hint=attended,
            )
        )

    loop = asyncio.get_running_loop()
    signals = exit_signals()
    told = False

    def on_signal(signum: signal.Signals) -> None:
        nonlocal told
        if session.scheduler.stop_request is None:
            session.stop(signals[signum])
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

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    speaker = await speaker_for_run(args, session, clock)
    try:
        return await session.run()
    finally:
        if speaker is not None:  # "program complete" or a STOP is still being said
            await speaker.close()
        for signum in signals:
            loop.remove_signal_handler(signum)
        if operator is not None:
            operator.detach()


def cmd_run(args: argparse.Namespace, program: Program | None = None) -> int:
    from retrotread.events import StopReason
    from retrotread.headless import format_summary
    from retrotread.program import find_program
    from retrotread.session import Outcome

    if args.rehearse and not args.device.startswith("sim://"):
        raise RetrotreadError(
            f"--rehearse runs on the virtual clock and needs the in-process simulator "
            f"(sim://...), not {args.device}"
        )
    if not (args.unattended or args.rehearse) and not sys.stdin.isatty():
        raise RetrotreadError(
            "no one at the keyboard to give the go: pass --unattended to start the belt "
            "without a person (every change is still announced), or --rehearse"
        )
    # Fail on a bad program or URL before anything connects.
    program = program or find_program(args.program)
    open_treadmill(args.device)
    settings_from_args(args)
    recording = records.open_recording(args)
    summary = run(play(args, program, recording), virtual=args.rehearse)
    hung_up = summary.reason is StopReason.SIGNAL_HUP  # no terminal left to print to or ask
    with contextlib.suppress(OSError):
        print(format_summary(summary))
    if recording is not None:
        attended = not args.unattended and sys.stdin.isatty() and not hung_up
        recording.conclude(summary, ask=attended)
    if summary.outcome in (Outcome.COMPLETED, Outcome.UNCONFIRMED):
        return EXIT_OK
    if summary.outcome is Outcome.INTERRUPTED:
        by_reason = {reason: 128 + signum for signum, reason in exit_signals().items()}
        return by_reason.get(summary.reason or StopReason.SIGNAL_INT, EXIT_SIGINT)
    if summary.outcome is Outcome.FAULT:
        return EXIT_FAULT
    return EXIT_STOPPED


# -- entry point ---------------------------------------------------------------------------------


def _setup_logging(verbose: bool) -> Path | None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    path = None
    try:
        from retrotread.paths import log_file

        path = log_file()
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    except OSError:
        path = None
    if verbose:
        root.addHandler(logging.StreamHandler(sys.stderr))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from retrotread.program import ProgramError

    log_path = _setup_logging(args.verbose)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "check":
            return cmd_check(args.files, args.device)
        if args.command == "programs":
            return cmd_programs()
        if args.command == "show":
            return cmd_show(args.program)
        if args.command == "devices":
            return cmd_devices()
        if args.command == "scan":
            return scan.cmd_scan(args)
        if args.command == "probe":
            return probe.cmd_probe(args)
        if args.command in records.COMMANDS:
            return records.run_command(args)
        if args.command in program_files.COMMANDS:
            return program_files.run_command(args, program_lines)
        if args.command == "tui":
            return cmd_tui(args)
        if sys.stdin.isatty() and sys.stdout.isatty():  # `retrotread` alone: the console
            return cmd_tui(default_tui_args())
        parser.print_help()
        return EXIT_OK
    except ProgramError as err:
        for line in err.lines():
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except (SafetyError, DeviceError) as err:
        print(f"retrotread: {err}", file=sys.stderr)
        return EXIT_FAULT if not isinstance(err, ValueError) else EXIT_USAGE
    except (ProfileError, RetrotreadError) as err:
        print(f"retrotread: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except BrokenPipeError:  # `retrotread programs | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as err:
        if isinstance(err, ModuleNotFoundError):  # a pip extra not installed (scan, --serve)
            from retrotread.extras import missing_extra

            if (missing := missing_extra(err, f"retrotread {args.command}")) is not None:
                print(f"retrotread: {missing}", file=sys.stderr)
                return EXIT_USAGE
        log.error("internal error\n%s", traceback.format_exc())
        where = f"; details in {log_path}" if log_path else ""
        print(f"retrotread: internal error{where}", file=sys.stderr)
        return EXIT_INTERNAL
