"""``--trace FILE`` on the commands that talk to a treadmill (``run``, ``tui``, ``probe``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from retrotread.trace import TRACE_ENV, request


def add_trace_option(parser: argparse.ArgumentParser) -> None:
    """``--trace FILE``: record every frame to and from the treadmill (see retrotread.trace)."""
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        metavar="FILE",
        help="append every frame to and from the treadmill to FILE as JSON lines, with what "
        f"the machine declared (never who is on the belt); also ${TRACE_ENV}=FILE",
    )


def apply_trace_option(args: argparse.Namespace) -> None:
    """Switch the trace on (or off) for this command, as its command line says."""
    request(getattr(args, "trace", None))
