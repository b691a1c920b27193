"""What every importer shares: reading the file safely, the imported steps, units and issues.

An importer turns a foreign file into an :class:`ImportedWorkout` — steps and repeat groups, each
remembering *where* in the file it came from — and reports every mistake it finds to an
:class:`Issues` collector as the loader does (file, line or element, field). Building the program
(retro rules, turn-arounds, validation) is shared and lives in ``build``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from retrotread.program.loader import ProgramError, ProgramIssue, read_small_file
from retrotread.program.model import BlockKind, Handrail
from retrotread.units import KMH_PER_MPH, Quantity, Unit, exact, format_number

#: Workout files are a few kilobytes; anything this large is not one (and is not read whole).
MAX_IMPORT_BYTES = 1024 * 1024
#: More steps than any interval session has; keeps a hostile file from building a huge program.
MAX_IMPORT_STEPS = 2000

METERS_PER_MILE = Fraction("1609.344")


# -- where a step came from ------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """A place in the source file: a line (text and XML) and what stands there."""

    line: int | None
    element: str  # "<row>", "step 3", "workout_step 2", "line"

    def issue(self, message: str) -> ProgramIssue:
        return ProgramIssue(self.line, f"{self.element}: {message}" if self.element else message)


FILE = Where(None, "")


@dataclass
class Issues:
    """Collects every mistake in a file, so the user fixes them all at once."""

    source: str
    found: list[ProgramIssue] = field(default_factory=list)

    def add(self, where: Where, message: str) -> None:
        issue = where.issue(message)
        if issue not in self.found:
            self.found.append(issue)

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_if_any(self) -> None:
        if self.found:
            raise ProgramError(self.source, list(self.found))

    def fail(self, where: Where, message: str) -> ProgramError:
        """An error that ends the import now (the file cannot be read further)."""
        self.add(where, message)
        return ProgramError(self.source, list(self.found))


# -- the imported workout ------------------------------------------------------------------------


@dataclass
class ImportedStep:
    """One step as the file gives it, before retro rules and turn-arounds.

    ``kind`` is what the file says the step is (warm-up, cool-down, recovery, forward); retro
    rules may turn a forward or recovery step into a retro block. ``fixed`` marks kinds carried by
    a file retrotread wrote itself: those are kept as they are.
    """

    where: Where
    duration_s: int
    # None only on a turn-around: the program's turn speed, or a pause when ``turn_pause``
    speed: Quantity | None
    incline: Quantity | None = None  # None: the program's default incline
    kind: BlockKind = BlockKind.FORWARD
    name: str = ""
    cue: str = ""
    handrail: Handrail | None = None
    fixed: bool = False
    turn_pause: bool = False


@dataclass
class ImportedRepeat:
    where: Where
    times: int
    steps: list[ImportedStep]
    name: str = ""


@dataclass
class ImportedWorkout:
    name: str
    description: str
    items: list[ImportedStep | ImportedRepeat]
    format: str  # "QZ treadmill XML", "Zwift workout", ...

    def step_count(self) -> int:
        return count_steps(self.items)


def count_steps(items: list[ImportedStep | ImportedRepeat]) -> int:
    return sum(
        len(item.steps) * item.times if isinstance(item, ImportedRepeat) else 1 for item in items
    )


def too_many_steps(count: int) -> str:
    return (
        f"has at least {count} steps once repeats are counted; at most {MAX_IMPORT_STEPS} are "
        "imported"
    )


def check_step_budget(items: list[ImportedStep | ImportedRepeat], issues: Issues) -> None:
    """Stop reading a file as soon as it holds more steps than any import takes."""
    count = count_steps(items)
    if count > MAX_IMPORT_STEPS:
        raise issues.fail(FILE, too_many_steps(count))


# -- units ---------------------------------------------------------------------------------------


class Units(enum.StrEnum):
    """How to read numbers whose unit the file leaves open (``--units``)."""

    MPH = "mph"
    KMH = "kmh"
    MIN_PER_MI = "min/mi"
    MIN_PER_KM = "min/km"

    @property
    def imperial(self) -> bool:
        return self in (Units.MPH, Units.MIN_PER_MI)

    @property
    def pace_distance(self) -> str:
        return "mi" if self.imperial else "km"


UNITS_HELP = (
    "--units mph|kmh|min/mi|min/km says how to read numbers the file leaves without a unit: "
    "mph and kmh read bare numbers as speeds, min/mi and min/km as paces; a pace written as "
    "m:ss without /mi or /km is per mile for mph and min/mi, per km for kmh and min/km"
)


def round_speed(value: Fraction, unit: Unit) -> Quantity:
    """Speeds are kept to 0.01 of their unit: what a program file and every console show."""
    return Quantity(Fraction(round(value * 100), 100), unit)


def pace_to_speed(seconds: Fraction, distance: str) -> Quantity:
    """A pace (seconds per mile or km) as a speed in mph or km/h."""
    if seconds <= 0:
        raise ValueError("a pace must be more than zero seconds")
    unit = Unit.MPH if distance == "mi" else Unit.KMH
    return round_speed(3600 / seconds, unit)


_PACE = re.compile(r"^(\d{1,3}):([0-5]\d)(?:/(mi|km))?$", re.IGNORECASE)
_SPEED = re.compile(r"^(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?$", re.IGNORECASE)


def parse_pace(text: str) -> tuple[Fraction, str | None]:
    """'20:00/mi' -> (1200, 'mi'); '9:30' -> (570, None)."""
    match = _PACE.match(text.strip())
    if not match:
        raise ValueError(f"expected a pace like 20:00/mi or 12:30/km, got {text!r}")
    seconds = Fraction(int(match.group(1)) * 60 + int(match.group(2)))
    return seconds, (match.group(3).lower() if match.group(3) else None)


def parse_speed_text(text: str, units: Units | None, what: str) -> Quantity:
    """A speed or pace the user typed: '3mph', '4.8 km/h', '20:00/mi', or a bare number with
    --units. Raises ValueError naming ``what`` and the fix."""
    text = text.strip()
    if ":" in text:
        seconds, distance = parse_pace(text)
        if distance is None:
            if units is None:
                raise ValueError(
                    f"{what} {text!r} is a pace without /mi or /km; write {text}/mi or "
                    f"{text}/km, or pass --units"
                )
            distance = units.pace_distance
        return pace_to_speed(seconds, distance)
    match = _SPEED.match(text)
    if not match:
        raise ValueError(f"{what} expected a speed like 3mph, 4.8km/h or a pace like 20:00/mi")
    number = exact(match.group(1))
    if match.group(2):
        unit = Unit.MPH if match.group(2).lower() == "mph" else Unit.KMH
        return round_speed(number, unit)
    return bare_speed(number, units, what)


def bare_speed(number: Fraction, units: Units | None, what: str) -> Quantity:
    """A number the file gives without a unit: read as ``--units`` says, never guessed."""
    if units is None:
        raise ValueError(f"{what} {format_number(number)} has no unit; {UNITS_HELP}")
    if units is Units.MPH:
        return round_speed(number, Unit.MPH)
    if units is Units.KMH:
        return round_speed(number, Unit.KMH)
    return pace_to_speed(number * 60, units.pace_distance)


def speed_from_kmh(kmh: Fraction, units: Units | None) -> Quantity:
    """An exact speed from a file that carries no unit of its own choosing (FIT's m/s, a Zwift
    fraction of a pace): in mph, the program files' own unit, or km/h when --units says so."""
    if units is not None and not units.imperial:
        return round_speed(kmh, Unit.KMH)
    return round_speed(kmh / KMH_PER_MPH, Unit.MPH)


def speed_in(value_mps: Fraction | float, units: Units | None) -> Quantity:
    """A speed in metres per second (FIT)."""
    return speed_from_kmh(exact(value_mps) * Fraction(36, 10), units)


def seconds_over(distance_m: Fraction, speed: Quantity) -> int:
    """How long a distance takes at a speed, to the nearest second (distance steps)."""
    metres_per_hour = speed.to(Unit.KMH).value * 1000
    if metres_per_hour <= 0:
        raise ValueError("needs a speed above zero to turn a distance into a time")
    return round(distance_m * 3600 / metres_per_hour)


def to_seconds(value: float | Fraction) -> int:
    """Programs count whole seconds; a file's fractions of a second round to the nearest."""
    return round(exact(value))


def round_incline(percent: Fraction) -> Quantity:
    """Inclines are kept to 0.1 %, the finest step any treadmill here takes."""
    return Quantity(Fraction(round(percent * 10), 10), Unit.PERCENT)


def ramp_steps(seconds: int, start: Quantity, end: Quantity) -> list[tuple[int, Quantity]]:
    """A ramp from one speed to another as steps: a block holds one speed.

    At most one step per 30 s and ten in all, each at the speed in the middle of its part.
    """
    if start == end or seconds < 60:
        middle = round_speed((start.value + end.to(start.unit).value) / 2, start.unit)
        return [(seconds, start if start == end else middle)]
    count = min(10, seconds // 30)
    base, extra = divmod(seconds, count)
    low, high = start.value, end.to(start.unit).value
    steps = []
    for i in range(count):
        speed = round_speed(low + (high - low) * Fraction(2 * i + 1, 2 * count), start.unit)
        steps.append((base + (1 if i < extra else 0), speed))
    return steps


def split_display_cue(cue: str, kind: BlockKind) -> tuple[Handrail | None, str]:
    """Undo :func:`retrotread.cues.display_cue` on a cue retrotread exported itself.

    Exports carry the whole cue the console shows ("Light touch on the handrails. Upright, ...")
    so a watch shows it; reading such a file back recovers the handrail and the block's own words.
    """
    from retrotread import cues

    if kind is BlockKind.TURN_AROUND:
        for facing in ("front", "rear"):
            prefix = cues.turn_instruction(facing)
            if cue in (prefix, prefix + ".") or cue.startswith(prefix + ". "):
                return None, cue[len(prefix) + 2 :].strip()
        return None, cue
    for grip in Handrail:
        phrase = cues.handrail(grip)
        prefix = phrase[:1].upper() + phrase[1:]
        if cue in (prefix, prefix + ".") or cue.startswith(prefix + ". "):
            return grip, cue[len(prefix) + 2 :].strip()
    return None, cue


# -- reading the file ------------------------------------------------------------------------------


def read_source(path: Path) -> bytes:
    """The file's bytes, refusing what is not a small regular file (a fifo, /dev/zero, a folder)."""
    return read_small_file(path, MAX_IMPORT_BYTES, "workout file")


def decode_text(raw: bytes, source: str) -> str:
    """UTF-8 text (a byte-order mark is allowed); the line of the first bad byte otherwise."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ProgramError(source, [ProgramIssue(line, "is not UTF-8 text")]) from err
