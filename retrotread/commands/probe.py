"""``retrotread probe URL``: learn what a treadmill is, and suggest a device profile for it.

1. **Connect with the belt stopped** and read everything the machine declares: its ranges,
   what it can be told (FTMS Feature and target settings, a CSAFE console's units and state, a
   Trackmaster's answer to the status queries), its device information. Nothing moves.
2. **With a person's go** (a prompt; ``--yes`` for tests), run a short exercise at the bottom of
   the retro band — start, two speeds, an incline, stop — as a program through the session and
   its governor, so every limit applies and every way out ends in a stop.
3. **Print what it observed** (how long each answer and each speed took, whether speed and
   incline are reported, in which unit) **and a suggested profile** (TOML) built from it, to
   save in the profile folder (or ``--output FILE``).

A Trackmaster is asked its status queries (``A5``/``A6``) whether or not its profile says it
answers them: the driver falls back to running blind if it calls them illegal.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrotread.commands.trace_option import add_trace_option
from retrotread.errors import RetrotreadError
from retrotread.options import DEFAULT_DEVICE
from retrotread.text import toml_string
from retrotread.units import Unit, format_number, mph, percent

if TYPE_CHECKING:
    from retrotread.drivers.base import Report, Treadmill
    from retrotread.events import Event
    from retrotread.profiles import Profile
    from retrotread.program.model import Program
    from retrotread.session import SessionSummary

#: The exercise: the bottom of the retro band, then a step up with the retro-walk incline.
FIRST_SPEED_MPH = "2.6"
SECOND_SPEED_MPH = "2.8"
EXERCISE_INCLINE_PCT = "2.0"
BLOCK_S = 12
#: Reported speed over commanded speed near this says the machine reads the field as mph.
MPH_RATIO = 1.609344
#: Reading within this share of the commanded speed counts as "as commanded".
SPEED_AGREEMENT = 0.06


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "probe",
        help="learn a treadmill's ranges and answers, and suggest a device profile",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "device", nargs="?", default=DEFAULT_DEVICE, metavar="URL", help="device URL to probe"
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="run the exercise without asking (someone is at the treadmill and has agreed)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="only read what the machine declares; never start the belt",
    )
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="also write the suggested profile here"
    )
    parser.add_argument("--name", metavar="NAME", help="the suggested profile's name")
    add_trace_option(parser)


# -- what was seen ---------------------------------------------------------------------------


@dataclass
class Observed:
    """What the machine declared and how it answered during the exercise."""

    declared: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, list[float]] = field(default_factory=dict)  # command -> answer times
    reached: dict[str, float] = field(default_factory=dict)  # "2.6 mph" -> seconds to reach
    refused: list[str] = field(default_factory=list)
    speeds: list[tuple[float, float]] = field(default_factory=list)  # (commanded, read) mph
    inclines: list[float] = field(default_factory=list)  # readings, %
    telemetry_at: list[float] = field(default_factory=list)
    exercised: bool = False
    summary: SessionSummary | None = None

    @property
    def reports_speed(self) -> bool:
        return any(read > 0 for _, read in self.speeds)

    @property
    def reports_incline(self) -> bool:
        return any(value != 0 for value in self.inclines)

    @property
    def speed_ratio(self) -> float | None:
        """Reported over commanded speed, once the belt settled (None: nothing to compare)."""
        import statistics

        settled = [read / asked for asked, read in self.speeds[-5:] if asked > 0 and read > 0]
        return statistics.median(settled) if settled else None

    @property
    def telemetry_gap_s(self) -> float | None:
        times = self.telemetry_at
        gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
        return max(gaps) if gaps else None


class Watcher:
    """Collects :class:`Observed` from the session's events and the treadmill's reports."""

    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.commanded_mph = 0.0
        self._issued: dict[str, float] = {}

    def on_event(self, event: Event) -> None:
        from retrotread.events import CommandConfirmed, CommandIssued, CommandUnconfirmed

        if isinstance(event, CommandIssued):
            name = f"{event.command}"
            self._issued[name] = event.at
            if event.value is not None and event.value.unit is not Unit.PERCENT:
                self.commanded_mph = float(event.value.mph)
        elif isinstance(event, CommandConfirmed):
            name = f"{event.command}"
            if name in self._issued:
                self.observed.answers.setdefault(name, []).append(event.latency_s)
                del self._issued[name]
            elif event.value is not None:  # the second confirmation: the belt got there
                shown = _shown(event.value)
                self.observed.reached.setdefault(shown, event.latency_s)
        elif isinstance(event, CommandUnconfirmed) and event.rejected:
            self.observed.refused.append(f"{event.command}: {event.reason}")
            self._issued.pop(f"{event.command}", None)

    def on_report(self, report: Report) -> None:
        from retrotread.drivers.base import Telemetry

        if not isinstance(report, Telemetry):
            return
        self.observed.telemetry_at.append(report.at)
        self.observed.speeds.append((self.commanded_mph, float(report.speed.mph)))
        self.observed.inclines.append(float(report.incline.value))


def _shown(value: Any) -> str:
    if value.unit is Unit.PERCENT:
        return f"{format_number(value.value, 1)} %"
    return f"{format_number(value.mph)} mph"


# -- what the machine declares ---------------------------------------------------------------


def declarations(treadmill: Treadmill) -> dict[str, Any]:
    """Everything the connected machine (and its driver) say it is."""
    capabilities = treadmill.capabilities
    declared: dict[str, Any] = {
        "name": treadmill.name,
        "profile used": treadmill.profile.name,
        "speed": f"{capabilities.speed.low} to {capabilities.speed.high} "
        f"in steps of {capabilities.speed.increment}",
        "incline": f"{capabilities.incline.low} to {capabilities.incline.high} "
        f"in steps of {capabilities.incline.increment}",
        "can be driven": capabilities.can_control,
        "reports its belt": treadmill.reports_belt,
    }
    if treadmill.identity:
        declared["identity"] = treadmill.identity
    serial_declared = getattr(treadmill, "declarations", None)
    if callable(serial_declared):
        more = serial_declared()
        for key in ("state", "speed_unit", "grade_unit", "status_query"):
            if key in more:
                declared[key.replace("_", " ")] = more[key]
    info = getattr(treadmill, "device_info", None)
    if isinstance(info, dict) and info:
        declared["device information"] = dict(info)
    client = getattr(treadmill, "_client", None)  # pyftms: the settings the machine offers
    settings = getattr(client, "supported_settings", None)
    if settings is not None:
        declared["target settings"] = sorted(str(s) for s in settings)
    properties = getattr(client, "supported_properties", None)
    if properties is not None:
        declared["reports"] = sorted(str(p) for p in properties)
    return declared


# -- the exercise ----------------------------------------------------------------------------


def exercise(block_s: int = BLOCK_S) -> Program:
    """Start, 2.6 mph flat, 2.8 mph at 2 %, stop: facing forward, both hands on the rails."""
    from retrotread.program.model import Block, BlockKind, Handrail, Program

    return Program(
        name="probe",
        description="A short exercise at the bottom of the retro band to learn the machine.",
        items=(
            Block(
                BlockKind.FORWARD,
                block_s,
                mph(FIRST_SPEED_MPH),
                percent(0),
                Handrail.BOTH_HANDS,
                name="first speed",
                cue="Face forward, hold both handrails",
            ),
            Block(
                BlockKind.FORWARD,
                block_s,
                mph(SECOND_SPEED_MPH),
                percent(EXERCISE_INCLINE_PCT),
                Handrail.BOTH_HANDS,
                name="second speed, incline",
                cue="Keep holding the handrails",
            ),
        ),
        source="<probe>",
    )


def probe_profile_base(url: str) -> Profile | None:
    """A Trackmaster is asked the status queries whatever its profile says."""
    from retrotread.drivers.url import DeviceUrl
    from retrotread.profiles import get_profile

    parsed = DeviceUrl.parse(url)
    if parsed.options.get("protocol") != "trackmaster":
        return None
    base = get_profile(parsed.options.get("profile", "generic-trackmaster"))
    return base.with_quirks(status_query=True)


Ask = Callable[[dict[str, Any]], Awaitable[bool]]


async def probe(url: str, ask: Ask, *, read_only: bool = False) -> tuple[Observed, Treadmill]:
    """Connect, read, and (if ``ask`` agrees) run the exercise; the belt ends stopped."""
    from retrotread.clock import LoopClock
    from retrotread.drivers.registry import open_treadmill

    treadmill = open_treadmill(url, clock=LoopClock(), profile=probe_profile_base(url))
    return await probe_treadmill(treadmill, ask, read_only=read_only), treadmill


async def probe_treadmill(
    treadmill: Treadmill, ask: Ask, *, read_only: bool = False, block_s: int = BLOCK_S
) -> Observed:
    """:func:`probe` on a driver not yet connected."""
    from retrotread.session import Session

    observed = Observed()
    watcher = Watcher(observed)
    session = Session(exercise(block_s), treadmill, treadmill.clock)

    async def go() -> bool:
        observed.declared = declarations(treadmill)
        if read_only:
            return False
        agreed = await ask(observed.declared)
        observed.exercised = agreed
        return agreed

    session.go = go
    session.subscribe(watcher.on_event)
    treadmill.subscribe(watcher.on_report)
    observed.summary = await session.run()  # connects, asks, plays; stops on every way out
    more = getattr(treadmill, "declarations", None)
    if callable(more):  # what a serial driver learned while it ran (sets during a workout)
        learned = more().get("sets_in_workout")
        if learned is not None:
            observed.declared["learned sets_in_workout"] = learned
    return observed


# -- the suggestion --------------------------------------------------------------------------


def suggested_profile(
    treadmill: Treadmill, observed: Observed, url: str, name: str | None = None
) -> str:
    """A device profile (TOML) for this machine, from its ranges and how it answered."""
    profile = treadmill.profile
    capabilities = treadmill.capabilities
    protocol = profile.protocol
    # A Bluetooth name without the address the driver adds: what ``match`` compares.
    label = re.sub(
        r" \([0-9A-Fa-f:-]+\)$", "", str(observed.declared.get("name") or treadmill.name)
    )
    name = name or "probed-" + (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or protocol)
    speed, incline = capabilities.speed, capabilities.incline
    top = min(float(speed.high.mph), float(profile.speed.max_mph.value))
    quirks = _quirks_of(profile)
    notes: list[str] = []
    ratio = observed.speed_ratio
    if protocol == "ftms" and ratio is not None and abs(ratio - MPH_RATIO) < 0.15:
        quirks["speed_field_mph"] = True
        notes.append(f"the belt ran {ratio:.2f} times the speed sent: it reads speed as mph")
    if protocol == "trackmaster":
        quirks["status_query"] = bool(observed.declared.get("status query", False))
    max_change = float(profile.speed.max_change_mph.value)
    if observed.declared.get("learned sets_in_workout") is False:
        max_change = max(max_change, 4.0)
        notes.append("the console takes no speed during a workout: no ramping is possible")
    reach = max(observed.reached.values(), default=0.0)
    timeout_s = max(profile.confirm.timeout_s, round(reach * 2 + 1))
    answers = [t for times in observed.answers.values() for t in times]
    command_timeout = max(profile.confirm.command_timeout_s, round(max(answers, default=0) * 3, 1))
    gap = observed.telemetry_gap_s or 0.0
    stale = max(profile.confirm.telemetry_stale_s, round(gap * 3, 1))
    match = [label] if protocol == "ftms" and label else []
    when = datetime.date.today().isoformat()
    lines = [
        f"# Suggested by `retrotread probe {url}` on {when}.",
        "# Ranges: what the machine declared (or the profile it was probed with); confirm times",
        "# and quirks: what it did during the exercise. Check them before relying on them.",
        *[f"# Observed: {note}." for note in notes],
        f"name = {_toml(name)}",
        f"description = {_toml(f'{label}, probed {when}')}",
        f"protocol = {_toml(protocol)}",
        f"match = [{', '.join(_toml(m) for m in match)}]",
        "",
        "[speed]",
        f"min = {_toml(str(speed.low))}",
        f"max = {_toml(str(speed.high))}",
        f"increment = {_toml(_increment(speed.increment.size, speed.increment.unit))}",
        f"max_mph = {_number(top)}",
        f"max_change_mph = {_number(max_change)}",
        "",
        "[incline]",
        f"min = {_number(float(incline.low.value))}",
        f"max = {_number(float(incline.high.value))}",
        f"increment = {_number(float(incline.increment.size))}",
        "",
        "[confirm]",
        f"tolerance_mph = {_number(float(profile.confirm.tolerance_mph.value))}",
        f"timeout_s = {_number(timeout_s)}",
        f"command_timeout_s = {_number(command_timeout)}",
        f"telemetry_stale_s = {_number(stale)}",
        "",
        "[quirks]",
        *[f"{key} = {_toml(value)}" for key, value in quirks.items()],
    ]
    return "\n".join(lines) + "\n"


def _quirks_of(profile: Profile) -> dict[str, Any]:
    """The quirks set in the profile probed with, and the ones the probe decides, shown."""
    from dataclasses import fields

    quirks = profile.quirks
    shown = _DECIDED.get(profile.protocol, set())
    unset = type(quirks)()
    return {
        f.name: getattr(quirks, f.name)
        for f in fields(quirks)
        if f.name in shown or getattr(quirks, f.name) != getattr(unset, f.name)
    }


#: Quirks the probe observes, per protocol: always written, true or false.
_DECIDED = {"ftms": {"speed_field_mph"}, "trackmaster": {"status_query"}}


def _increment(size: Fraction, unit: Unit) -> str:
    return f"{format_number(size, 3)} {unit}"


def _number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _toml(value: Any) -> str:
    """A quirk's value as the profile loader reads it back (tables, arrays, bytes as hex)."""
    from dataclasses import fields, is_dataclass

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(float(value))
    if isinstance(value, bytes):
        return f'"{value.hex(" ")}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if is_dataclass(value) and not isinstance(value, type):
        pairs = [f"{f.name} = {_toml(getattr(value, f.name))}" for f in fields(value)]
        return "{ " + ", ".join(pairs) + " }"
    return toml_string(str(value))


def report_lines(observed: Observed) -> list[str]:
    lines = ["What the machine declares:"]
    lines += [f"  {key}: {value}" for key, value in observed.declared.items()]
    if not observed.exercised:
        lines.append("The exercise was not run: the ranges are declared, the rest unobserved.")
        return lines
    lines.append("What it did during the exercise:")
    for command, times in observed.answers.items():
        shown = ", ".join(f"{t * 1000:.0f}" for t in times)
        lines.append(f"  {command}: answered in {shown} ms")
    for target, seconds in observed.reached.items():
        lines.append(f"  belt at {target} after {seconds:.1f} s")
    lines.append(f"  reports speed: {'yes' if observed.reports_speed else 'no'}")
    lines.append(f"  reports incline: {'yes' if observed.reports_incline else 'no'}")
    if (ratio := observed.speed_ratio) is not None:
        lines.append(f"  reported speed / commanded speed: {ratio:.2f}")
    if (gap := observed.telemetry_gap_s) is not None:
        lines.append(f"  longest gap between readings: {gap:.1f} s")
    lines += [f"  refused: {refusal}" for refusal in observed.refused]
    if observed.summary is not None:
        stopped = "belt stopped" if observed.summary.belt_stopped else "belt NOT confirmed stopped"
        lines.append(f"  ended: {observed.summary.outcome.value}, {stopped}")
    return lines


# -- the command -----------------------------------------------------------------------------


async def ask_person(declared: dict[str, Any]) -> bool:
    """The person at the treadmill agrees to the exercise (Enter or y), or not."""
    for line in report_lines(Observed(declared=declared)):
        if not line.startswith("The exercise"):
            print(line, flush=True)
    print(
        f"\nNext: a short exercise facing forward — start, {FIRST_SPEED_MPH} mph, then "
        f"{SECOND_SPEED_MPH} mph at {EXERCISE_INCLINE_PCT} %, then stop ({2 * BLOCK_S} s).\n"
        "Stand on the side rails or hold both handrails. Run it? [y/N] ",
        end="",
        flush=True,
    )
    import asyncio

    answer = await asyncio.to_thread(sys.stdin.readline)
    return answer.strip().lower() in ("y", "yes")


def cmd_probe(args: argparse.Namespace) -> int:
    # The session's machinery loads here, not with the command line (`retrotread --help`).
    from retrotread.clock import run
    from retrotread.drivers.registry import open_treadmill

    if not (args.yes or args.read_only) and not sys.stdin.isatty():
        raise RetrotreadError(
            "no one at the keyboard to agree to the exercise: pass --yes (someone is at the "
            "treadmill and agreed) or --read-only"
        )
    open_treadmill(args.device)  # a bad URL fails before anything connects

    async def agreed(declared: dict[str, Any]) -> bool:
        if args.yes:
            for line in report_lines(Observed(declared=declared)):
                if not line.startswith("The exercise"):
                    print(line, flush=True)
            return True
        return await ask_person(declared)

    observed, treadmill = run(probe(args.device, agreed, read_only=args.read_only))
    if observed.exercised:
        for line in report_lines(observed)[len(observed.declared) + 1 :]:
            print(line)
    else:
        print("\n".join(report_lines(observed)))
    text = suggested_profile(treadmill, observed, args.device, args.name)
    print("\nSuggested profile (save it in the profile folder, or use --output FILE):\n")
    print(text, end="")
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        print(f"\nWritten to {args.output}")
    return 0 if observed.summary is None or observed.summary.belt_stopped else 4
