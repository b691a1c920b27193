"""intervals.icu workout text: the plain-text notation of its workout builder.

As the builder reads it (its "Workout Builder Syntax Quick Guide" on forum.intervals.icu)::

    Warmup
    - 5m 22:00/mi Pace

    Main set 4x
    - Retro 30s 20:00/mi Pace
    - Easy 1m 22:30/mi Pace

    Cooldown
    - 3m ramp 22:00-24:00/mi Pace

Steps start with ``-``; the first duration (``1h``, ``10m``, ``30s``, ``1m30``, ``5'``, ``30"``,
``1'30"``) or distance (``2km``, ``0.4km``, ``1mi``, ``500mtr``; ``m`` is minutes) ends the step's
cue text. Targets: an absolute pace (``5:00/km Pace``, a range ``7:15-7:00/km Pace`` plays at its
middle; a pace without ``/km`` or ``/mi`` needs ``--units``), a percentage of threshold pace
(``80% Pace``, with ``--pace-ref``), ``ramp`` before a pace range, ``freeride`` (with
``--free-speed``). A line ending in ``Nx`` (``Main set 4x`` or ``4x`` alone) repeats the steps
below it up to the next blank line or heading. Headings name their steps; "Warmup", "Cooldown"
and "Recovery" headings (or step texts) make warm-up, cool-down and recovery blocks. Power,
heart-rate and zone targets need the athlete's settings on intervals.icu and are refused.
"""

from __future__ import annotations

import re
from fractions import Fraction

from retrotread.program.formats.source import (
    UNITS_HELP,
    ImportedRepeat,
    ImportedStep,
    ImportedWorkout,
    Issues,
    Units,
    Where,
    check_step_budget,
    ramp_steps,
    round_speed,
    seconds_over,
)
from retrotread.program.model import BlockKind
from retrotread.units import Quantity, Unit, exact

FORMAT = "intervals.icu workout text"

_REPEAT = re.compile(r"^(?:(.*?)\s+)?(\d+)\s*x$", re.IGNORECASE)
_TIME = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.IGNORECASE)
_TIME_SHORT = re.compile(r"^(\d+)m(\d+)$", re.IGNORECASE)  # 1m30
_TIME_QUOTES = re.compile(r"^(?:(\d+)')?(?:(\d+)\")?$")  # 5', 30", 1'30"
_DISTANCE = re.compile(r"^(\d+(?:\.\d+)?)(km|mi|mtr)$", re.IGNORECASE)
_PACE_END = r"(\d{1,3}):([0-5]\d)(?:/(km|mi|100m|200m|250m|400m|500m|100y))?"
_PACE = re.compile(rf"^{_PACE_END}(?:-{_PACE_END})?$", re.IGNORECASE)
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?%$")
_ZONE = re.compile(r"^z\d(?:-z\d)?$", re.IGNORECASE)
_POWER = re.compile(r"^\d+(?:-\d+)?w$", re.IGNORECASE)
_RPM = re.compile(r"^\d+(?:-\d+)?rpm$", re.IGNORECASE)

PACE_METRES = {
    "km": Fraction(1000),
    "mi": Fraction("1609.344"),
    "100m": Fraction(100),
    "200m": Fraction(200),
    "250m": Fraction(250),
    "400m": Fraction(400),
    "500m": Fraction(500),
    "100y": Fraction("91.44"),
}


def _duration(token: str) -> int | None:
    if match := _TIME_SHORT.match(token):
        return int(match.group(1)) * 60 + int(match.group(2))
    match = _TIME.match(token) or _TIME_QUOTES.match(token)
    if not match or not any(match.groups()):
        return None
    numbers = [int(g) if g else 0 for g in match.groups()]
    if len(numbers) == 3:
        return numbers[0] * 3600 + numbers[1] * 60 + numbers[2]
    return numbers[0] * 60 + numbers[1]


def _distance(token: str) -> Fraction | None:
    match = _DISTANCE.match(token)
    if not match:
        return None
    unit = match.group(2).lower()
    metres = {"km": Fraction(1000), "mi": Fraction("1609.344"), "mtr": Fraction(1)}[unit]
    return exact(match.group(1)) * metres


def _kind(words: str) -> BlockKind | None:
    lowered = words.lower()
    if re.match(r"^warm[\s-]?up\b", lowered):
        return BlockKind.WARM_UP
    if re.match(r"^cool[\s-]?down\b", lowered):
        return BlockKind.COOL_DOWN
    if re.match(r"^recover", lowered):
        return BlockKind.RECOVERY
    return None


class _Reader:
    def __init__(
        self,
        issues: Issues,
        units: Units | None,
        pace_ref: Quantity | None,
        free_speed: Quantity | None,
    ) -> None:
        self.issues = issues
        self.units = units
        self.pace_ref = pace_ref
        self.free_speed = free_speed

    def pace(self, minutes: str, seconds: str, per: str | None, where: Where) -> Quantity | None:
        total = Fraction(int(minutes) * 60 + int(seconds))
        if per is None:
            if self.units is None:
                self.issues.add(
                    where, f"the pace {minutes}:{seconds} has no /km or /mi; {UNITS_HELP}"
                )
                return None
            per = self.units.pace_distance
        if total <= 0:
            self.issues.add(where, "a pace must be more than zero")
            return None
        per = per.lower()
        unit = Unit.MPH if per in ("mi", "100y") else Unit.KMH
        kmh = PACE_METRES[per] * 36 / 10 / total
        return round_speed(kmh if unit is Unit.KMH else kmh / Fraction("1.609344"), unit)

    def targets(self, tokens: list[str], where: Where) -> tuple[list[Quantity], bool, list[str]]:
        """The speeds a step's targets name (one, or two for a range or ramp), whether the step
        ramps, and the words that are no target (more cue text)."""
        speeds: list[Quantity] = []
        ramp = False
        words: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            following = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
            lowered = token.lower()
            if lowered == "ramp":
                ramp = True
            elif lowered == "freeride":
                if self.free_speed is None:
                    self.issues.add(
                        where, "freeride has no speed target; pass --free-speed (e.g. 2.5mph)"
                    )
                else:
                    speeds.append(self.free_speed)
            elif match := _PACE.match(token):
                ends = [(match.group(1), match.group(2), match.group(3))]
                if match.group(4):
                    ends.append((match.group(4), match.group(5), match.group(6)))
                unit_given = next((per for _, _, per in ends if per), None)
                for minutes, seconds, per in ends:
                    speed = self.pace(minutes, seconds, per or unit_given, where)
                    if speed is not None:
                        speeds.append(speed)
                if following == "pace":
                    i += 1
            elif (match := _PERCENT.match(token)) and following == "pace":
                i += 1
                if self.pace_ref is None:
                    self.issues.add(
                        where,
                        f"{token} Pace is a share of your threshold pace; pass --pace-ref with "
                        "it (e.g. --pace-ref 18:00/mi)",
                    )
                else:
                    reference = self.pace_ref
                    for part in (match.group(1), match.group(2)):
                        if part:
                            share = exact(part) / 100
                            speeds.append(round_speed(reference.value * share, reference.unit))
            elif _ZONE.match(token) or (_PERCENT.match(token) and following in ("hr", "lthr")):
                what = "pace zone" if following == "pace" else "zone"
                if following in ("hr", "lthr"):
                    what = "heart-rate target"
                self.issues.add(
                    where,
                    f"{token} {following} is a {what} from your intervals.icu settings; write "
                    "the pace itself (e.g. 20:00/mi Pace)".replace("  ", " "),
                )
                if following in ("pace", "hr", "lthr"):
                    i += 1
            elif _PERCENT.match(token) or _POWER.match(token):
                self.issues.add(where, f"{token} is a power target; a treadmill step needs a pace")
            elif _RPM.match(token):
                pass  # cadence: nothing for the belt to do
            else:
                words.append(token)
            i += 1
        return speeds, ramp, words

    def step(self, text: str, where: Where, heading: str) -> list[ImportedStep]:
        tokens = text.split()
        at = next(
            (
                n
                for n, token in enumerate(tokens)
                if _duration(token) is not None or _distance(token) is not None
            ),
            None,
        )
        if at is None:
            self.issues.add(
                where,
                "a step needs a duration (30s, 2m, 1m30, 1h) or a distance (1km, 0.5mi, 400mtr)",
            )
            return []
        before = len(self.issues.found)
        cue_words = tokens[:at]
        speeds, ramp, more_words = self.targets(tokens[at + 1 :], where)
        cue = " ".join(cue_words + more_words)
        if not speeds:
            if len(self.issues.found) == before:
                self.issues.add(where, "has no pace target (e.g. 20:00/mi Pace)")
            return []
        if len(self.issues.found) > before:
            return []
        start, end = speeds[0], speeds[-1].to(speeds[0].unit)
        middle = round_speed((start.value + end.value) / 2, start.unit)
        seconds = _duration(tokens[at])
        if seconds is None:
            distance = _distance(tokens[at])
            assert distance is not None
            if distance <= 0 or middle.value <= 0:
                self.issues.add(where, f"{tokens[at]} needs a distance and a speed above zero")
                return []
            seconds = seconds_over(distance, middle)
        kind = _kind(cue) or _kind(heading) or BlockKind.FORWARD
        name = heading
        if not ramp:
            return [ImportedStep(where, seconds, middle, kind=kind, name=name, cue=cue)]
        parts = ramp_steps(seconds, start, end)
        return [
            ImportedStep(
                where,
                part_seconds,
                speed,
                kind=kind,
                name=f"{name or 'Ramp'} ({n}/{len(parts)})" if len(parts) > 1 else name,
                cue=cue if n == 1 else "",
            )
            for n, (part_seconds, speed) in enumerate(parts, start=1)
        ]


def read(
    text: str,
    source: str,
    issues: Issues,
    *,
    units: Units | None,
    pace_ref: Quantity | None,
    free_speed: Quantity | None,
    name: str,
) -> ImportedWorkout:
    reader = _Reader(issues, units, pace_ref, free_speed)
    items: list[ImportedStep | ImportedRepeat] = []
    group: ImportedRepeat | None = None
    heading = ""

    def close() -> None:
        nonlocal group
        if group is not None:
            if group.steps:
                items.append(group)
            else:
                issues.add(
                    group.where, f"{group.times}x repeats no steps (put '- ' steps below it)"
                )
        group = None

    for number, raw in enumerate(text.splitlines(), start=1):
        if number % 64 == 0:
            check_step_budget([*items, group] if group else items, issues)
        line = raw.strip()
        where = Where(number, "")
        if not line:
            close()
            heading = ""
        elif line.startswith("-"):
            steps = reader.step(line[1:].strip(), where, heading)
            if group is not None:
                group.steps.extend(steps)
            else:
                items.extend(steps)
        else:
            close()
            heading = line
            if match := _REPEAT.match(line):
                times = int(match.group(2))
                heading = (match.group(1) or "").strip()
                if not 1 <= times <= 100:
                    issues.add(where, f"{times}x: a repeat runs 1 to 100 rounds")
                else:
                    group = ImportedRepeat(where, times, [], heading)
    close()
    if not items and not issues:
        issues.add(Where(None, ""), "has no steps: lines like '- 5m 20:00/mi Pace'")
    issues.raise_if_any()
    return ImportedWorkout(name, f"Imported from the intervals.icu workout {name}.", items, FORMAT)
