"""``retrotread-sim``: run the simulated treadmill on its own."""

from __future__ import annotations

import argparse
import json
import logging
import re
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
    _log_options(parser, after=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("spec", help="print the simulated machine's specification as JSON")
    serve.add_parser(commands)
    replay.add_parser(commands)
    for command in commands.choices.values():
        _log_options(command, after=True)  # `serve -v` as well as `-v serve`
        command.description = plain_help(command.description)
        command.epilog = plain_help(command.epilog)
    return parser


LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_options(parser: argparse.ArgumentParser, *, after: bool) -> None:
    """-v and --log-level, before the command and after it alike (each place keeps its own
    value, so one given after the command does not undo one given before it)."""
    where = "_after" if after else ""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest=f"verbose{where}",
        help="tell more on stderr: -v what happens at the machine and on the link, -vv every frame",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=None,
        dest=f"log_level{where}",
        help="the least a message must weigh to be told (overrides -v; default warning)",
    )


def log_level(args: argparse.Namespace) -> int:
    named = getattr(args, "log_level_after", None) or args.log_level
    if named is not None:
        return int(getattr(logging, named.upper()))
    count = args.verbose + getattr(args, "verbose_after", 0)
    return (logging.WARNING, logging.INFO)[count] if count < 2 else logging.DEBUG


def _configure_logging(level: int) -> None:
    logger = logging.getLogger("retrotread_sim")
    logger.setLevel(level)
    if not any(getattr(handler, "retrotread_sim", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("retrotread-sim: %(levelname)s: %(message)s"))
        handler.retrotread_sim = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_help(text: str | None) -> str | None:
    """A docstring as ``--help`` shows it: no reStructuredText markup (``--x``, :mod:`m`,
    a paragraph ending in ``::`` before an example)."""
    if text is None:
        return None
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    text = _LITERAL.sub(r"\1", text)
    return re.sub(r"::(\n|$)", r":\1", text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(log_level(args))
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
