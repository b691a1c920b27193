"""QZ (qdomyos-zwift) treadmill programs: ``.xml`` files of ``<row>``s.

The format as QZ reads and writes it (``trainprogram::loadXML`` and ``trainprogram::saveXML`` in
src/trainprogram.cpp of github.com/cagnulein/qdomyos-zwift)::

    <rows>
      <row duration="00:05:00" speed="4.0" inclination="1" forcespeed="1"/>
      <repeat times="6">
        <row duration="00:00:30" speed="4.5" forcespeed="1"/>
        <row duration="00:01:00" speed="4.0" forcespeed="1"/>
      </repeat>
      <row duration="00:03:00" speedfrom="4.0" speedto="3.0"/>
    </rows>

``duration`` is hh:mm:ss (or ``distance`` in km), ``speed`` a bare number (QZ itself works in
km/h, but files are also written by hand in mph: ``--units`` decides), ``inclination`` in percent,
``speedfrom``/``speedto`` a ramp. A row without ``speed`` keeps the belt at the speed before it,
as QZ does; a row without ``inclination`` keeps the incline. QZ commands a row's speed when
``forcespeed="1"`` or its "force speed" setting is on; retrotread always plays the given speed.
Text events are ``<textevent message="..."/>`` children of a row, as in Zwift files (QZ's own
editor writes none); they become the block's cue. Bike-only attributes (power, cadence,
resistance, heart-rate zones, GPS) have nothing to drive on a treadmill and are skipped.
"""

from __future__ import annotations

import difflib
import re
from fractions import Fraction

from retrotread.program.formats.source import (
    ImportedRepeat,
    ImportedStep,
    ImportedWorkout,
    Issues,
    Units,
    Where,
    bare_speed,
    check_step_budget,
    ramp_steps,
    round_incline,
    seconds_over,
)
from retrotread.program.formats.xmltree import Element, parse_xml
from retrotread.units import Quantity, exact

FORMAT = "QZ treadmill program"

ROW_ATTRIBUTES = (
    "duration",
    "distance",
    "speed",
    "inclination",
    "forcespeed",
    "speedfrom",
    "speedto",
)
#: What QZ writes for bikes, heart-rate loops and GPX routes: nothing a treadmill step can use.
SKIPPED_ATTRIBUTES = frozenset(
    {
        "fanspeed",
        "resistance",
        "lower_resistance",
        "upper_resistance",
        "requested_peloton_resistance",
        "lower_requested_peloton_resistance",
        "upper_requested_peloton_resistance",
        "pace_intensity",
        "cadence",
        "lower_cadence",
        "upper_cadence",
        "power",
        "powerzone",
        "powerzonefrom",
        "powerzoneto",
        "mets",
        "latitude",
        "longitude",
        "altitude",
        "azimuth",
        "maxspeed",
        "minspeed",
        "maxresistance",
        "zonehr",
        "hrmin",
        "hrmax",
        "looptimehr",
    }
)
_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d):([0-5]\d)$")
_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?$")


class _Reader:
    def __init__(self, issues: Issues, units: Units | None, free_speed: Quantity | None) -> None:
        self.issues = issues
        self.units = units
        self.free_speed = free_speed
        self.speed: Quantity | None = None  # the belt's speed so far (rows without one keep it)
        self.incline: Quantity | None = None
        self.told_units = False

    def number(self, row: Element, where: Where, name: str) -> Fraction | None:
        text = row.attrs[name].strip()
        if not _NUMBER.match(text):
            self.issues.add(where, f"{name} must be a number, got {text!r}")
            return None
        return exact(text)

    def speed_of(self, row: Element, where: Where, name: str) -> Quantity | None:
        number = self.number(row, where, name)
        if number is None:
            return None
        if self.units is None:
            if not self.told_units:
                self.issues.add(
                    where,
                    f"{name} {row.attrs[name].strip()}: a QZ file does not say its speed unit; "
                    "pass --units kmh (QZ's own unit) or --units mph",
                )
            self.told_units = True
            return None
        if self.units not in (Units.MPH, Units.KMH):
            self.issues.add(where, f"{name}: QZ speeds are speeds; pass --units kmh or mph")
            return None
        return bare_speed(number, self.units, name)

    def row(self, row: Element) -> list[ImportedStep]:
        where = Where(row.line, "<row>")
        for name in row.attrs:
            if name not in ROW_ATTRIBUTES and name not in SKIPPED_ATTRIBUTES:
                close = difflib.get_close_matches(name, ROW_ATTRIBUTES, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.issues.add(where, f"unknown attribute '{name}'{hint}")
        before = len(self.issues.found)

        cue = _text_events(row, self.issues)
        if "inclination" in row.attrs:
            incline = self.number(row, where, "inclination")
            if incline is not None and incline > -100:  # QZ writes -200 for "unchanged"
                self.incline = round_incline(incline)

        ramp: tuple[Quantity, Quantity] | None = None
        if "speedfrom" in row.attrs or "speedto" in row.attrs:
            if "speedfrom" not in row.attrs or "speedto" not in row.attrs:
                self.issues.add(where, "a ramp needs both speedfrom and speedto")
            else:
                start = self.speed_of(row, where, "speedfrom")
                end = self.speed_of(row, where, "speedto")
                if start is not None and end is not None:
                    ramp = (start, end.to(start.unit))
                    self.speed = ramp[1]
        elif "speed" in row.attrs:
            speed = self.speed_of(row, where, "speed")
            if speed is not None:
                self.speed = speed
        elif self.speed is None:
            if self.free_speed is None:
                self.issues.add(
                    where,
                    "the first row has no speed (QZ leaves the belt as it is); add speed or "
                    "pass --free-speed",
                )
            self.speed = self.free_speed

        seconds: int | None = None
        if "duration" in row.attrs:
            clock = _CLOCK.match(row.attrs["duration"].strip())
            if clock is None:
                self.issues.add(
                    where, f"duration must be hh:mm:ss, got {row.attrs['duration'].strip()!r}"
                )
            else:
                h, m, s = (int(g) for g in clock.groups())
                seconds = h * 3600 + m * 60 + s
        if "distance" in row.attrs and not seconds:
            km = self.number(row, where, "distance")
            speed = ramp[0] if ramp else self.speed
            if km is not None and km <= 0:
                self.issues.add(where, "distance must be more than zero km")
            elif km is not None and speed is not None and speed.value > 0:
                seconds = seconds_over(km * 1000, speed)
            elif km is not None and speed is not None:
                self.issues.add(where, "a distance needs a speed above zero to take a time")
        elif seconds is None:
            self.issues.add(where, 'duration is missing (duration="00:01:30")')

        if len(self.issues.found) > before or seconds is None or self.speed is None:
            return []
        if ramp is not None:
            parts = ramp_steps(seconds, *ramp)
            return [
                ImportedStep(
                    where,
                    part_seconds,
                    speed,
                    self.incline,
                    name=f"Ramp ({n}/{len(parts)})" if len(parts) > 1 else "",
                    cue=cue if n == 1 else "",
                )
                for n, (part_seconds, speed) in enumerate(parts, start=1)
            ]
        return [ImportedStep(where, seconds, self.speed, self.incline, cue=cue)]


def _text_events(row: Element, issues: Issues) -> str:
    messages: list[tuple[float, str]] = []
    for child in row.children:
        where = Where(child.line, f"<{child.tag}>")
        if child.tag.lower() != "textevent":
            issues.add(where, f"unknown element <{child.tag}> in a row; expected <textevent>")
            continue
        message = child.attrs.get("message", "").strip()
        if not message:
            issues.add(where, "a textevent needs a message")
            continue
        offset = child.attrs.get("timeoffset", "0").strip()
        messages.append((float(offset) if _NUMBER.match(offset) else 0.0, message))
    return "; ".join(message for _, message in sorted(messages, key=lambda m: m[0]))


def read(
    raw: bytes,
    source: str,
    issues: Issues,
    *,
    units: Units | None,
    free_speed: Quantity | None,
    name: str,
) -> ImportedWorkout:
    root = parse_xml(raw, source)
    if root.tag != "rows":
        raise issues.fail(
            Where(root.line, f"<{root.tag}>"),
            "a QZ program's root element is <rows> (a Zwift workout's is <workout_file>)",
        )
    reader = _Reader(issues, units, free_speed)
    items: list[ImportedStep | ImportedRepeat] = []
    for element in root.children:
        where = Where(element.line, f"<{element.tag}>")
        if element.tag == "row":
            items.extend(reader.row(element))
        elif element.tag == "repeat":
            times_text = element.attrs.get("times", "").strip()
            times = int(times_text) if times_text.isdigit() else None
            if times is None or times < 1:
                issues.add(where, f"times must be a whole number of rounds, got {times_text!r}")
            steps: list[ImportedStep] = []
            for child in element.children:
                child_where = Where(child.line, f"<{child.tag}>")
                if child.tag == "row":
                    steps.extend(reader.row(child))
                elif child.tag == "repeat":
                    issues.add(child_where, "repeats cannot be nested (QZ repeats one level)")
                else:
                    issues.add(child_where, f"unknown element <{child.tag}>; expected <row>")
            if not element.children:
                issues.add(where, "a repeat needs <row>s inside")
            if times is not None and times >= 1 and steps:
                items.append(ImportedRepeat(where, times, steps))
        else:
            issues.add(where, f"unknown element <{element.tag}>; expected <row> or <repeat>")
        check_step_budget(items, issues)
    if not items and not issues:
        issues.add(Where(root.line, "<rows>"), "the program has no rows")
    issues.raise_if_any()
    return ImportedWorkout(name, f"Imported from the QZ program {name}.", items, FORMAT)
