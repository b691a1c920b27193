"""``retrotread-sim serve``: the simulated treadmill on a serial line (a pty) or a TCP port.

The treadmill runs in its own process, as a real one would, and speaks CSAFE or Trackmaster
through the responders in :mod:`retrotread_sim.csafe` and :mod:`retrotread_sim.trackmaster`.
The first line on stdout is where to reach it: a pty path (``/dev/pts/7``) or ``HOST:PORT``.
It serves until SIGTERM or SIGINT.

``--personality`` picks which console answers (each written from public sources, see
:mod:`retrotread_sim.csafe` and :mod:`retrotread_sim.trackmaster`): ``matrix`` or ``concept2``
for CSAFE (``concept2`` by default), ``trackmaster`` (no status requests, the default) or
``trackmaster-query`` for Trackmaster. ``--profile FILE`` takes it from a retrotread device
profile instead: its protocol, its quirks (speed unit, read-only, status queries) and the
console its name says (``matrix-...``, ``concept2-...``).

``--line-rate`` makes the link as slow as the wire it stands for: a byte takes 10 bit times (8N1)
at ``--baud`` (CSAFE 9600, Trackmaster 4800 by default) to arrive, both ways, so round trips
measure what a real RS-232 link would give.

``--record FILE`` appends one JSON line per frame received — its bytes in hex, the answer, and
the machine's state after it — and per console action, flushed as they happen, so a test in
another process can check the exact wire bytes and that the belt ended stopped.

A person at the machine is simulated on stdin, one command per line, each answered on stdout
with ``ok ...`` or ``error ...``::

    start | pause | stop | key-out | key-in | speed MPH | grade PERCENT | state
    unplug [SECONDS]   drop the link (the pty disappears; the TCP client is cut) and come back
    mute | unmute      stop / resume answering (a console that went quiet)
    corrupt [N]        garble the next N answers on the wire

``--faults PLAN`` (or ``@scenario.toml``) injects the faults of :mod:`retrotread_sim.faults`,
timed from when the simulator starts: ``reject`` answers with the protocol's own refusal,
``ignore`` and ``late`` withhold or delay the answer (the machine has acted: the outcome is
unknown to the controller), ``stale`` stops all answers, ``freeze`` repeats the first poll
answer, ``drop`` unplugs the port, ``garble=RATE`` flips bytes, ``split`` sends each answer in
two pieces, ``duplicate`` sends it twice, and the console faults press the machine's buttons.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from retrotread_sim.consoles import apply_profile, machine_spec, make_responder
from retrotread_sim.csafe import DEFAULT_PERSONALITY, PERSONALITIES, SPEED_UNIT_NAMES
from retrotread_sim.endpoints import Endpoint, PtyEndpoint, TcpEndpoint
from retrotread_sim.faults import FaultPlan, FaultPlanError
from retrotread_sim.process import SimProcess
from retrotread_sim.serial_server import Recorder, SerialServer
from retrotread_sim.trackmaster import PERSONALITIES as TRACKMASTER_PERSONALITIES
from retrotread_sim.wire import Exchange, Responder, WireTiming, hex_bytes, machine_state

#: The pieces ``serve`` is made of, importable from here as before the split.
__all__ = [
    "Endpoint",
    "Exchange",
    "PtyEndpoint",
    "Recorder",
    "Responder",
    "SerialServer",
    "SimProcess",
    "TcpEndpoint",
    "WireTiming",
    "add_parser",
    "apply_profile",
    "hex_bytes",
    "machine_spec",
    "machine_state",
    "make_responder",
    "run",
]


def _fault_plan(text: str) -> FaultPlan:
    try:
        return FaultPlan.load(Path(text[1:])) if text.startswith("@") else FaultPlan.parse(text)
    except (FaultPlanError, OSError, KeyError) as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return f"{host or '127.0.0.1'}:{port}"


def _byte(text: str) -> int:
    value = int(text, 0)
    if not 0 <= value <= 0xFF:
        raise argparse.ArgumentTypeError(f"an address is one byte (0-255), got {text}")
    return value


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the simulated treadmill over CSAFE or Trackmaster on a pty or TCP port",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--protocol", required=True, choices=("csafe", "trackmaster"))
    serve.add_argument(
        "--personality",
        choices=(*PERSONALITIES, *TRACKMASTER_PERSONALITIES),
        help=f"which console answers (csafe: {', '.join(PERSONALITIES)}, "
        f"default {DEFAULT_PERSONALITY}; trackmaster: {', '.join(TRACKMASTER_PERSONALITIES)})",
    )
    serve.add_argument(
        "--profile", type=Path, metavar="FILE", help="be the console this device profile describes"
    )
    serve.add_argument("--tcp", type=_address, metavar="HOST:PORT", help="serve on TCP, not a pty")
    serve.add_argument("--link", type=Path, metavar="PATH", help="keep a symlink to the pty here")
    serve.add_argument(
        "--baud", type=int, metavar="N", help="line rate (csafe 9600, trackmaster 4800)"
    )
    serve.add_argument(
        "--line-rate", action="store_true", help="take as long as the wire would at --baud"
    )
    serve.add_argument("--record", type=Path, metavar="FILE", help="append frames as JSON lines")
    serve.add_argument("--accel", type=float, default=2.0, help="belt km/h per second (2.0)")
    serve.add_argument("--decel", type=float, default=3.0, help="belt km/h per second (3.0)")
    serve.add_argument(
        "--speed-needs-running", action="store_true", help="refuse speed until the belt moves"
    )
    csafe = serve.add_argument_group("CSAFE")
    csafe.add_argument(
        "--speed-unit", default="0.1mph", choices=tuple(SPEED_UNIT_NAMES), help="(0.1mph)"
    )
    csafe.add_argument(
        "--read-only", action="store_true", help="console in manual mode: answers Get only"
    )
    csafe.add_argument("--address", type=_byte, default=1, help="extended-frame address (1)")
    csafe.add_argument(
        "--odometer",
        type=float,
        metavar="M",
        help="GetHorizontal is a running total from M metres that never resets",
    )
    serve.add_argument(
        "--faults",
        type=_fault_plan,
        default=FaultPlan(),
        metavar="PLAN",
        help="inject faults, e.g. 'reject:set-speed=failed@5,garble=0.01' or @scenario.toml",
    )
    trackmaster = serve.add_argument_group("Trackmaster")
    trackmaster.add_argument(
        "--status-query", action="store_true", help="answer A5 (speed) and A6 (grade) queries"
    )


def run(args: argparse.Namespace) -> int:
    if args.baud is not None and args.baud <= 0:
        print("retrotread-sim: --baud must be positive", file=sys.stderr)
        return 2
    if args.link is not None and args.tcp:
        print("retrotread-sim: --link is for the pty, not --tcp", file=sys.stderr)
        return 2
    if args.profile is not None and (problem := apply_profile(args)):
        print(f"retrotread-sim: {problem}", file=sys.stderr)
        return 2
    known = PERSONALITIES if args.protocol == "csafe" else TRACKMASTER_PERSONALITIES
    if args.personality is not None and args.personality not in known:
        print(
            f"retrotread-sim: --personality {args.personality} is not a {args.protocol} console; "
            f"known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(SerialServer(args).serve())
    except OSError as err:
        print(f"retrotread-sim: cannot serve: {err}", file=sys.stderr)
        return 1
