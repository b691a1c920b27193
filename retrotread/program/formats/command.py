"""``retrotread import`` and ``retrotread export-program``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from retrotread.errors import RetrotreadError
from retrotread.program.formats import (
    EXPORTS,
    FORMATS,
    GRAMMAR,
    UNITS_HELP,
    ImportOptions,
    RuleError,
    Units,
    export_program,
    import_file,
    parse_rules,
    parse_speed_text,
)
from retrotread.program.library import find_program
from retrotread.program.model import Program, format_duration

COMMANDS = ("import", "export-program")

Preview = Callable[[Program], list[str]]

IMPORT_EPILOG = f"""\
formats (--format, or found from the file):
{chr(10).join(f"  {name:<4} {what}" for name, what in FORMATS.items())}

Every step stays a forward walk unless a --retro rule maps it; turn-arounds are put in
wherever the walker's facing changes. The result passes `retrotread check` or nothing is
written, and the errors name the place in the file.

{GRAMMAR}

{textwrap.fill(UNITS_HELP + ".", 92)}

example:
  retrotread import intervals.xml --units kmh --retro "15-120s@2.6-3.2mph" -o mine.toml"""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    importer = commands.add_parser(
        "import",
        help="read a workout from QZ .xml, Zwift .zwo, FIT or intervals.icu text",
        description="Turn a workout file from another app into a retrotread program: "
        "show its blocks, and with -o write it as a program file (.toml).",
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    importer.add_argument("file", metavar="FILE", help="the workout file")
    importer.add_argument("-o", "--output", metavar="PROGRAM.toml", help="write the program here")
    importer.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    importer.add_argument(
        "--units",
        choices=[unit.value for unit in Units],
        help="how to read numbers the file gives without a unit (see below)",
    )
    importer.add_argument(
        "--retro",
        action="append",
        default=[],
        metavar="RULE",
        help='map steps to retro blocks, e.g. "15-120s@2.6-3.2mph" (see below)',
    )
    importer.add_argument(
        "--pace-ref",
        metavar="PACE",
        help="the pace 100 %% stands for (Zwift run Power 1.0, intervals.icu %% Pace), "
        "e.g. 20:00/mi or 3mph",
    )
    importer.add_argument(
        "--free-speed",
        metavar="SPEED",
        help="the speed for steps without a target (Zwift FreeRide, open FIT steps), e.g. 2.5mph",
    )
    importer.add_argument("--format", choices=list(FORMATS), help="the file's format")

    exporter = commands.add_parser(
        "export-program",
        help="write a program as a FIT workout (.fit) or Zwift workout (.zwo)",
        description="Carry a program to a watch or another app: a FIT workout file (steps with "
        "speed targets, cues in each step's notes) or a Zwift run workout (cues as text events).",
    )
    exporter.add_argument("program", metavar="PROGRAM", help="built-in name or .toml file")
    exporter.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE.fit|FILE.zwo",
        help="the file to write; its extension picks the format",
    )
    exporter.add_argument("--force", action="store_true", help="overwrite an existing file")


def _options(args: argparse.Namespace) -> ImportOptions:
    units = Units(args.units) if args.units else None
    try:
        rules = parse_rules(args.retro)
    except RuleError as err:
        raise RetrotreadError(str(err)) from err
    speeds = {}
    for flag, value in (("--pace-ref", args.pace_ref), ("--free-speed", args.free_speed)):
        if value is not None:
            try:
                speeds[flag] = parse_speed_text(value, units, flag)
            except ValueError as err:
                raise RetrotreadError(str(err)) from err
    return ImportOptions(
        units=units,
        retro=rules,
        pace_ref=speeds.get("--pace-ref"),
        free_speed=speeds.get("--free-speed"),
        format=args.format,
    )


def write_new(path: Path, data: bytes, force: bool) -> None:
    """Write a file, never overwriting one that exists unless ``force``; all or nothing."""
    if path.is_dir():
        raise RetrotreadError(f"{path} is a directory")
    if not force:
        try:
            with path.open("xb") as handle:
                handle.write(data)
        except FileExistsError as err:
            raise RetrotreadError(f"{path} exists; pass --force to overwrite it") from err
        except OSError as err:
            raise RetrotreadError(f"{path}: cannot write: {err.strerror}") from err
        return
    folder = path.parent if str(path.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except OSError as err:
        raise RetrotreadError(f"{path}: cannot write: {err.strerror}") from err


def cmd_import(args: argparse.Namespace, preview: Preview) -> int:
    options = _options(args)
    imported = import_file(Path(args.file), options)
    to_stdout = args.output == "-"
    shown = sys.stderr if to_stdout else sys.stdout
    program = imported.program
    print(f"{args.file}: {imported.workout.format}", file=shown)
    for line in preview(program):
        print(line, file=shown)
    retro = sum(1 for step in program.steps if step.kind.is_retro)
    print(
        f"{len(program.steps)} blocks, {retro} retro, "
        f"{format_duration(program.total_s)} total — passes `retrotread check`",
        file=shown,
    )
    if to_stdout:
        sys.stdout.write(imported.toml)
    elif args.output:
        write_new(Path(args.output), imported.toml.encode("utf-8"), args.force)
        print(f"wrote {args.output}", file=shown)
    else:
        print("(nothing written: pass -o PROGRAM.toml to save it)", file=shown)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    path = Path(args.output)
    if path.suffix.lower() not in EXPORTS:
        raise RetrotreadError(
            f"{path}: export writes {' or '.join(EXPORTS)} files (the extension picks the format)"
        )
    program = find_program(args.program)
    data = export_program(program, path)
    write_new(path, data, args.force)
    print(
        f"wrote {path}: {EXPORTS[path.suffix.lower()]} '{program.name}', "
        f"{len(program.steps)} blocks, {format_duration(program.total_s)}"
    )
    return 0


def run_command(args: argparse.Namespace, preview: Preview) -> int:
    if args.command == "import":
        return cmd_import(args, preview)
    return cmd_export(args)
