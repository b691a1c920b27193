"""``retrotread-sim``: run the simulated treadmill on its own."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from retrotread_sim import replay, serve
from retrotread_sim.belt import MachineSpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrotread-sim",
        description="A simulated treadmill for retrotread: belt physics, a console, a safety "
        "key, and the FTMS, CSAFE and Trackmaster protocols.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("spec", help="print the simulated machine's specification as JSON")
    serve.add_parser(commands)
    replay.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "spec":
        json.dump(asdict(MachineSpec()), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.command == "serve":
        return serve.run(args)
    if args.command == "replay":
        return replay.run(args)
    parser.print_help()
    return 0
