"""The clinic's commands: ``limits`` (a client's limits, set by the clinician), ``feel`` (how a
walk felt) and ``report`` (the client's HTML report).

The records, the clinic modules and the report are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

COMMANDS = ("limits", "feel", "report")
HANDRAILS = ("both-hands", "light-touch", "hands-free")
#: `limits --clear NAME`: the option's name -> the limit it clears
CLEARABLE = {
    "speed": ("speed_low_mph", "speed_high_mph"),
    "incline": ("incline_max_pct",),
    "backward": ("longest_backward_s",),
    "handrail": ("handrail",),
    "heart": ("hr_ceiling_bpm", "age", "hr_percent"),
    "recovery": ("recovery_mph",),
    "strap": ("strap",),
}


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH", help="records file or postgresql:// URL")


def _speed_band(text: str) -> tuple[float | None, float]:
    """'2.6-3.0' (backward band and top speed) or '3.0' (top speed only), in mph."""
    low, sep, high = text.replace("–", "-").partition("-")
    try:
        return (float(low) if sep else None), float(high if sep else low)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW-HIGH or HIGH in mph (e.g. 2.6-3.0), got {text!r}"
        ) from None


def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "y", "true", "1"):
        return True
    if text.lower() in ("no", "n", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def add_commands(commands: Subparsers) -> None:
    limits = commands.add_parser(
        "limits",
        help="show or set a client's limits (speed, incline, backward stretch, heart rate...)",
        description="The clinician's limits for a client, on top of the program and the "
        "treadmill's profile: the governor keeps every command inside them, and a program "
        "that asks for more is refused before the belt moves. Without options: show them.",
    )
    limits.add_argument("--client", metavar="NAME", required=True)
    limits.add_argument(
        "--speed",
        type=_speed_band,
        metavar="LOW-HIGH",
        help="mph: backward blocks from LOW, every block at most HIGH (or just HIGH)",
    )
    limits.add_argument("--incline", type=float, metavar="PERCENT", help="the steepest incline")
    limits.add_argument(
        "--backward",
        type=int,
        metavar="SECONDS",
        help="the longest stretch backward without a turn-around",
    )
    limits.add_argument(
        "--handrail", choices=HANDRAILS, help="the least handrail support allowed backward"
    )
    limits.add_argument(
        "--retro-run", type=_yes_no, metavar="yes|no", help="retro-running allowed or not"
    )
    limits.add_argument("--hr-ceiling", type=int, metavar="BPM", help="heart-rate ceiling")
    limits.add_argument("--age", type=int, help="with --hr-percent: a ceiling from age")
    limits.add_argument(
        "--hr-percent", type=float, metavar="PERCENT", help="the ceiling as %% of 220 − age"
    )
    limits.add_argument(
        "--recovery-speed", type=float, metavar="MPH", help="the belt's pace above the ceiling"
    )
    limits.add_argument("--strap", metavar="ADDRESS", help="the heart-rate strap (see `scan`)")
    limits.add_argument(
        "--clear", action="append", choices=list(CLEARABLE), default=[], help="remove a limit"
    )
    _db_option(limits)

    feel = commands.add_parser(
        "feel",
        help="record how a session (or one of its blocks) felt",
        description="Pain 0–10, exertion on the Borg CR10 scale (0–10, halves allowed), "
        "balance losses and the handrail level used. The progression counts on them: pain up "
        "by 2 or more holds the rung, by 4 or to 7 steps back.",
    )
    feel.add_argument("session", metavar="SESSION", help="session number, or 'last'")
    feel.add_argument("--client", metavar="NAME", help="with 'last': this client's last")
    feel.add_argument("--pain", type=int, metavar="0-10")
    feel.add_argument("--exertion", type=float, metavar="CR10")
    feel.add_argument("--balance-losses", type=int, metavar="N")
    feel.add_argument("--handrail", choices=HANDRAILS, help="the handrail level used")
    feel.add_argument("--block", type=int, metavar="N", help="one block (1-based), not the whole")
    _db_option(feel)

    report = commands.add_parser(
        "report",
        help="write a client's report as one HTML page (plots, progression, limits)",
        description="A self-contained HTML page (inline SVG, nothing fetched) with the time "
        "backward, the longest backward stretch, pain and exertion, heart rate per session and "
        "the progression's steps with their reasons: open it in a browser, or print it.",
    )
    report.add_argument("--client", metavar="NAME", required=True)
    report.add_argument("-o", "--output", type=Path, metavar="PATH", default=None)
    _db_option(report)


def run_command(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "limits": cmd_limits,
        "feel": cmd_feel,
        "report": cmd_report,
    }
    return handlers[args.command](args)


def _open(args: argparse.Namespace) -> Any:
    from retrotread.store import Store

    return Store.open(args.db)


def cmd_limits(args: argparse.Namespace) -> int:
    from retrotread.clinic import records
    from retrotread.clinic.limits import LimitsError
    from retrotread.program import Handrail

    changes: dict[str, object] = {}
    for name in args.clear:
        changes.update(dict.fromkeys(CLEARABLE[name]))
    if args.speed is not None:
        changes["speed_low_mph"], changes["speed_high_mph"] = args.speed
    simple = {
        "incline": "incline_max_pct",
        "backward": "longest_backward_s",
        "retro_run": "retro_run",
        "hr_ceiling": "hr_ceiling_bpm",
        "age": "age",
        "hr_percent": "hr_percent",
        "recovery_speed": "recovery_mph",
        "strap": "strap",
    }
    for option, field in simple.items():
        if getattr(args, option) is not None:
            changes[field] = getattr(args, option)
    if args.handrail is not None:
        changes["handrail"] = Handrail(args.handrail)
    with _open(args) as store:
        client = store.client(args.client)
        current = records.limits(store, client)
        if changes:
            try:
                current = current.with_changes(changes)
            except LimitsError as err:
                raise LimitsError(f"{client.name}'s limits not changed: {err}") from None
            records.set_limits(store, client, current)
        lines = current.describe()
    print(f"Limits for {client.name}:" if lines else f"No limits set for {client.name}.")
    for line in lines:
        print(f"  {line}")
    return 0


def cmd_feel(args: argparse.Namespace) -> int:
    from retrotread.clinic import records
    from retrotread.clinic.records import WHOLE_SESSION, Feeling
    from retrotread.commands.records import _session_arg
    from retrotread.program import Handrail

    feeling = Feeling(
        pain=args.pain,
        exertion=args.exertion,
        balance_losses=args.balance_losses,
        handrail=Handrail(args.handrail) if args.handrail else None,
        block_idx=args.block - 1 if args.block else WHOLE_SESSION,
    )
    if feeling.empty:
        raise records.FeelingError(
            "nothing to record: give --pain, --exertion, --balance-losses or --handrail"
        )
    with _open(args) as store:
        record = _session_arg(store, args.session, args.client)
        if args.block is not None and not 1 <= args.block <= record.blocks_total:
            raise records.FeelingError(
                f"session #{record.id} has blocks 1–{record.blocks_total}, not {args.block}"
            )
        records.record_feeling(store, record.id, feeling)
        where = f"block {args.block} of " if args.block else ""
        print(f"{where}session #{record.id}: {feeling.describe()}")
        if record.client:
            client = store.client(record.client)
            planned = records.next_session(store, client)
            print(f"next for {client.name}: {planned.stage.describe()} — {planned.reason}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from retrotread.clinic.report import report

    with _open(args) as store:
        client = store.client(args.client)
        page = report(store, client)
    slug = "".join(c if c.isalnum() else "-" for c in client.name.lower()).strip("-")
    output: Path = args.output or Path(f"retrotread-report-{slug}-{date.today():%Y%m%d}.html")
    output.write_text(page, encoding="utf-8")
    print(f"report for {client.name} written to {output}")
    return 0
