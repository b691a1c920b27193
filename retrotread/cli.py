# PYTHON_ARGCOMPLETE_OK (argcomplete: `retrotread completion bash`)
"""The ``retrotread`` command line."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from retrotread import completion, config
from retrotread.commands import clinic, probe, records, scan
from retrotread.commands.trace_option import add_trace_option, apply_trace_option
from retrotread.errors import (
    DeviceError,
    DeviceUnavailable,
    ProfileError,
    RetrotreadError,
    SafetyError,
    Unavailable,
)
from retrotread.exits import (
    EXIT_CODES,
    EXIT_FAULT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_USAGE,
)
from retrotread.floor.command import add_floor_options, add_floor_parser, floor_options
from retrotread.options import RunOptions
from retrotread.program.formats import command as program_files
from retrotread.speech.options import add_speech_options, settings_from_args
from retrotread.tui.command import add_tui_parser, cmd_tui

# The session, its events and the headless printer load with the command that needs them:
# `retrotread --help`, `programs` and `check` start without them.
if TYPE_CHECKING:
    from retrotread.program import Program


class _Version(argparse.Action):
    """``--version``, read from the installed distribution only when asked (importing
    importlib.metadata costs more than the rest of ``--help``)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: object) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, help="show the version")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from retrotread import __version__

        print(f"retrotread {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrotread",
        description="Treadmill controller and interval runner for retro (backward) walking.",
        epilog="A PROGRAM is a built-in's name (see `retrotread programs`) or a .toml file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version)
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
        "--device",
        default=None,
        metavar="URL",
        help="device URL (default: the settings' device.url, else sim://; see `retrotread config`)",
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
    add_floor_options(run_parser)

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
    config.add_parser(commands)
    completion.add_parser(commands)
    probe.add_parser(commands)
    records.add_commands(commands)
    clinic.add_commands(commands)
    program_files.add_parsers(commands)
    add_tui_parser(commands)
    add_floor_parser(commands)
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
    from retrotread.clock import LoopClock
    from retrotread.drivers.registry import open_treadmill
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
        from retrotread.clock import run  # asyncio: only when a device is asked

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


def run_options(args: argparse.Namespace) -> RunOptions:
    """``run``'s command line as options (a bad speech setting is a usage error here)."""
    return RunOptions(
        program=args.program,
        device=args.device,
        rehearse=args.rehearse,
        unattended=args.unattended,
        allow_blind=args.allow_blind,
        quiet=args.quiet,
        speech=None if args.mute else settings_from_args(args),
        record=records.record_options(args),
        floor=floor_options(args),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from retrotread.playback import run_headless

    return run_headless(run_options(args))


# -- entry point ---------------------------------------------------------------------------------


def _setup_logging(verbose: bool) -> Path | None:
    import logging  # only a command that runs something logs: `--help` starts without it

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


def _names_nothing_usable(err: Exception) -> bool:
    """Bad input (exit 2), not a fault: a malformed URL, or one that names no device here."""
    unusable = (Unavailable.NOT_FOUND, Unavailable.NOT_PERMITTED)
    return isinstance(err, ValueError) or (
        isinstance(err, DeviceUnavailable) and err.reason in unusable
    )


def _readable_output() -> None:
    """A terminal that cannot show every character (PYTHONIOENCODING=ascii, a C locale) gets
    a stand-in for each one, never a crash."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    _readable_output()
    parser = build_parser()
    completion.complete_if_asked(parser)
    args = parser.parse_args(argv)
    from retrotread.program import ProgramError

    log_path = _setup_logging(args.verbose)
    try:
        if args.command == "config":
            return config.cmd_config(args)
        if args.command == "completion":
            return completion.cmd_completion(args)
        apply_trace_option(args)
        # `check` checks against a device only when one is named on its command line.
        config.fill_from_settings(args, skip=("device",) if args.command == "check" else ())
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
        if args.command in clinic.COMMANDS:
            return clinic.run_command(args)
        if args.command in program_files.COMMANDS:
            return program_files.run_command(args, program_lines)
        if args.command == "floor":
            from retrotread.floor.command import cmd_floor

            return cmd_floor(args)
        if args.command == "tui":
            return cmd_tui(args)
        if sys.stdin.isatty() and sys.stdout.isatty():  # `retrotread` alone: the console
            console_args = parser.parse_args(["tui"])
            config.fill_from_settings(console_args)
            return cmd_tui(console_args)
        parser.print_help()
        return EXIT_OK
    except ProgramError as err:
        for line in err.lines():
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except (SafetyError, DeviceError) as err:
        print(f"retrotread: {err}", file=sys.stderr)
        return EXIT_USAGE if _names_nothing_usable(err) else EXIT_FAULT
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
        import logging
        import traceback

        logging.getLogger("retrotread").error("internal error\n%s", traceback.format_exc())
        where = f"; details in {log_path}" if log_path else ""
        print(f"retrotread: internal error{where}", file=sys.stderr)
        return EXIT_INTERNAL
