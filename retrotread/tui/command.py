"""``retrotread tui``: the command line side of the console.

This module is imported by the CLI on every run, so it imports Textual only inside
:func:`cmd_tui`: ``retrotread run`` and the core never load it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from retrotread.commands import records
from retrotread.errors import RetrotreadError
from retrotread.options import ConsoleOptions
from retrotread.program import find_program

if TYPE_CHECKING:  # the records load when a console records, not for `retrotread --help`
    from retrotread.events import SessionSummary
    from retrotread.recording import Recording

DESCRIPTION = """Open the operator console: big countdown, handrail cues, target and actual
speed, STOP always one key away. With a PROGRAM it opens ready on that program (the belt
starts on enter); without one it opens on the start screen."""

KEYS = """keys on the run screen:
  enter  start the belt (the go)      space  pause / resume
  s, Esc STOP (belt stops at once)    n      skip the block
  e      extend the block by 15 s     + / -  speed 0.1 mph up / down, within the band
  m      mute the voice and the bell  w      walker view: countdown and cue only
  q      quit (stops the belt first)"""


def add_tui_parser(commands: Any) -> None:
    """Register ``tui`` on the CLI's sub-command parsers."""
    tui = commands.add_parser(
        "tui",
        help="open the operator console (what `retrotread` alone does)",
        description=DESCRIPTION,
        epilog=KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tui.add_argument(
        "program", nargs="?", metavar="PROGRAM", help="built-in name or .toml file to open on"
    )
    tui.add_argument(
        "--device",
        default=None,
        metavar="URL",
        help="device URL (default: the settings' device.url, else sim://; see `retrotread config`)",
    )
    tui.add_argument(
        "--mute", action="store_true", help="start muted: no spoken cues, no bell on the 3-2-1"
    )
    records.add_recording_options(tui)
    from retrotread.commands.trace_option import add_trace_option

    add_trace_option(tui)
    from retrotread.speech.options import add_speech_options  # the console's own options
    from retrotread.web.options import add_serve_options

    tui.add_argument(
        "--walker",
        action="store_true",
        help="open the run in the walker view: only the big countdown and the cue",
    )
    add_serve_options(tui)
    add_speech_options(tui, mute=False)
    from retrotread.floor.command import add_floor_options

    add_floor_options(tui)


def console_options(args: argparse.Namespace) -> ConsoleOptions:
    """``tui``'s command line as options (a bad speech setting is a usage error here)."""
    from retrotread.floor.command import floor_options
    from retrotread.speech.options import settings_from_args
    from retrotread.web.options import serve_options

    return ConsoleOptions(
        program=args.program,
        device=args.device,
        mute=args.mute,
        walker=args.walker,
        speech=settings_from_args(args),
        record=records.record_options(args),
        serve=serve_options(args) if args.serve else None,
        floor=floor_options(args),
    )


def cmd_tui(args: argparse.Namespace) -> int:
    return open_console(console_options(args))


def open_console(options: ConsoleOptions) -> int:
    """The console on this terminal (or, with ``serve``, in browsers) until it closes."""
    from retrotread.drivers.registry import open_treadmill  # not for `retrotread --help`

    # Fail on a bad program or device URL before the screen is taken over.
    program = find_program(options.program) if options.program else None
    open_treadmill(options.device)
    if options.serve is not None:
        from retrotread.web.serve import serve_console

        if program is None:
            raise RetrotreadError("--serve plays one program: give its name or .toml file")
        return serve_console(options, options.serve, program)

    from retrotread.clinic.setup import console_start
    from retrotread.floor.publisher import closing_link, open_link
    from retrotread.headless import format_summary
    from retrotread.recording import open_recording
    from retrotread.tui.app import ConsoleApp, run_console
    from retrotread.tui.devices import find_scanner

    recording = open_recording(options.record)
    floor = open_link(options.floor, options.record.client)
    recorded = console_start(recording) if recording else None
    app = ConsoleApp(
        program=program,
        device=options.device,
        go_straight_to_run=program is not None,
        scanner=find_scanner(),
        muted=options.mute,
        walker=options.walker,
        speech=options.speech,
        on_session_start=floor.also(recorded) if floor else recorded,
        on_outcome=outcome_recorder(recording) if recording else None,
    )
    try:
        import asyncio

        summary = asyncio.run(closing_link(run_console(app), floor))
    finally:
        if recording is not None:
            recording.store.close()
    if summary is not None:
        print(format_summary(summary))
    return 0


def outcome_recorder(recording: Recording) -> Callable[[SessionSummary, str, str], None]:
    """The summary screen's outcome, stored against the session the recorder wrote."""

    def record(summary: SessionSummary, outcome: str, note: str) -> None:
        from retrotread.progression import OperatorOutcome
        from retrotread.store import StoreError

        recorder = recording.recorder
        if recorder is None or recorder.session_id is None:
            raise StoreError("this session was not recorded (see the log)")
        recording.store.record_outcome(recorder.session_id, OperatorOutcome(outcome), note)

    return record
