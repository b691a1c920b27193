"""Zwift workouts (``.zwo``): run workouts in, any program out.

The elements and attributes follow the inventory of Zwift's own workouts in
github.com/h4l/zwift-workout-file-reference and how QZ reads run workouts
(src/zwiftworkout.cpp in github.com/cagnulein/qdomyos-zwift)::

    <workout_file>
      <name>Easy intervals</name>
      <sportType>run</sportType>
      <durationType>time</durationType>          <!-- or distance: Duration in metres -->
      <thresholdSecPerKm>600</thresholdSecPerKm> <!-- optional: the pace Power 1.0 stands for -->
      <workout>
        <Warmup Duration="300" PowerLow="0.6" PowerHigh="0.75" pace="0"/>
        <IntervalsT Repeat="4" OnDuration="30" OffDuration="60" OnPower="0.9" OffPower="0.7"/>
        <SteadyState Duration="120" Power="0.8" Incline="0.02">
          <textevent timeoffset="0" message="upright, slight forward lean"/>
        </SteadyState>
        <FreeRide Duration="120"/>
        <Cooldown Duration="180" PowerLow="0.7" PowerHigh="0.5"/>
      </workout>
    </workout_file>

A run workout's ``Power`` is a fraction of the runner's pace (``pace`` picks which one in Zwift:
0 mile, 1 5 km, 2 10 km, 3 half marathon, 4 marathon), so the file alone gives no speed: the pace
1.0 stands for comes from ``<thresholdSecPerKm>`` (as QZ reads it) or from ``--pace-ref``.
``Incline`` is a fraction (0.02 is 2 %), as QZ reads it. Ramps become steps; ``FreeRide`` has no
target and takes ``--free-speed``; text events become the block's cue.

Exports write every block as a ``SteadyState`` (QZ plays those at the exact speed from
``thresholdSecPerKm``; in Zwift they scale with the runner's own pace) with the block's kind and
name in ``retrotread_kind``/``retrotread_name`` attributes, which other apps skip.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET
from fractions import Fraction

from retrotread.program.formats.source import (
    ImportedRepeat,
    ImportedStep,
    ImportedWorkout,
    Issues,
    Units,
    Where,
    check_step_budget,
    ramp_steps,
    round_incline,
    round_speed,
    seconds_over,
    speed_from_kmh,
    split_display_cue,
    to_seconds,
)
from retrotread.program.formats.xmltree import Element, parse_xml
from retrotread.program.model import BlockKind, Program
from retrotread.units import Quantity, Unit, exact, format_number

FORMAT = "Zwift workout"
AUTHOR = "retrotread"

PACE_NAMES = {"0": "1 mile", "1": "5 km", "2": "10 km", "3": "half marathon", "4": "marathon"}
SEGMENTS = ("SteadyState", "Warmup", "Cooldown", "Ramp", "IntervalsT", "FreeRide", "MaxEffort")
_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d{1,3})?$")
_HEADER = frozenset(
    {
        "name",
        "author",
        "author_alias",
        "authoricon",
        "description",
        "category",
        "categoryindex",
        "subcategory",
        "sporttype",
        "durationtype",
        "thresholdsecperkm",
        "tags",
        "workout",
        "activitysavename",
        "entid",
        "ftpoverride",
        "overridehash",
        "painindex",
        "showcp20",
        "skippable",
        "test_details",
        "visibleaftertime",
        "visibleoutsideplan",
        "workoutlength",
        "workoutplan",
    }
)


class _Reader:
    def __init__(
        self,
        issues: Issues,
        reference: Quantity | None,
        free_speed: Quantity | None,
        by_distance: bool,
        units: Units | None,
    ) -> None:
        self.issues = issues
        self.units = units
        self.reference = reference
        self.free_speed = free_speed
        self.by_distance = by_distance
        self.paces: dict[str, Where] = {}

    def number(self, element: Element, where: Where, name: str) -> Fraction | None:
        if name not in element.attrs:
            self.issues.add(where, f"{name} is missing")
            return None
        text = element.attrs[name].strip()
        if not _NUMBER.match(text):
            self.issues.add(where, f"{name} must be a number, got {text!r}")
            return None
        return exact(text)

    def speed(self, element: Element, where: Where, name: str) -> Quantity | None:
        power = self.number(element, where, name)
        if power is None or self.reference is None:
            return None
        if power <= 0:
            self.issues.add(where, f"{name} must be above zero, got {element.attrs[name]!r}")
            return None
        self.paces.setdefault(element.attrs.get("pace", "0").strip(), where)
        return speed_from_kmh(self.reference.to(Unit.KMH).value * power, self.units)

    def ranged(
        self, element: Element, where: Where, name: str, low_name: str, high_name: str
    ) -> Quantity | None:
        """A target given as one value, or as a range (played at its middle, as watches do)."""
        if name in element.attrs or not (low_name in element.attrs and high_name in element.attrs):
            return self.speed(element, where, name)
        low = self.speed(element, where, low_name)
        high = self.speed(element, where, high_name)
        if low is None or high is None:
            return None
        return round_speed((low.value + high.to(low.unit).value) / 2, low.unit)

    def seconds(
        self, element: Element, where: Where, name: str, speed: Quantity | None
    ) -> int | None:
        value = self.number(element, where, name)
        if value is None:
            return None
        if not self.by_distance:
            return to_seconds(value)
        if speed is None:
            return None
        if value <= 0 or speed.value <= 0:
            self.issues.add(where, f"{name} {format_number(value)} m needs a distance and a speed")
            return None
        return seconds_over(value, speed)

    def incline(self, element: Element, where: Where) -> Quantity | None:
        if "Incline" not in element.attrs:
            return None
        fraction = self.number(element, where, "Incline")
        return None if fraction is None else round_incline(fraction * 100)

    def steady(self, element: Element, where: Where, cue: str) -> ImportedStep | None:
        speed = self.ranged(element, where, "Power", "PowerLow", "PowerHigh")
        seconds = self.seconds(element, where, "Duration", speed)
        if speed is None or seconds is None:
            return None
        return ImportedStep(where, seconds, speed, self.incline(element, where), cue=cue)

    def ramp(self, element: Element, where: Where, cue: str, kind: BlockKind) -> list[ImportedStep]:
        start = self.speed(element, where, "PowerLow")
        end = self.speed(element, where, "PowerHigh")
        if start is None or end is None:
            return []
        middle = round_speed((start.value + end.to(start.unit).value) / 2, start.unit)
        seconds = self.seconds(element, where, "Duration", middle)
        if seconds is None:
            return []
        parts = ramp_steps(seconds, start, end)
        title = {BlockKind.WARM_UP: "Warm-up", BlockKind.COOL_DOWN: "Cool-down"}.get(kind, "Ramp")
        incline = self.incline(element, where)
        return [
            ImportedStep(
                where,
                part_seconds,
                speed,
                incline,
                kind=kind,
                name=f"{title} ({n}/{len(parts)})" if len(parts) > 1 else "",
                cue=cue if n == 1 else "",
            )
            for n, (part_seconds, speed) in enumerate(parts, start=1)
        ]

    def free(self, element: Element, where: Where, cue: str) -> ImportedStep | None:
        if self.free_speed is None:
            self.issues.add(
                where,
                f"<{element.tag}> has no speed target; pass --free-speed (e.g. 2.5mph) to walk "
                "it at one speed",
            )
            return None
        seconds = self.seconds(element, where, "Duration", self.free_speed)
        if seconds is None:
            return None
        return ImportedStep(where, seconds, self.free_speed, self.incline(element, where), cue=cue)

    def intervals(self, element: Element, where: Where, cue: str) -> ImportedRepeat | None:
        times_text = element.attrs.get("Repeat", "1").strip()
        times = int(times_text) if times_text.isdigit() else None
        if times is None or times < 1:
            self.issues.add(where, f"Repeat must be a whole number of rounds, got {times_text!r}")
        on_speed = self.ranged(element, where, "OnPower", "PowerOnLow", "PowerOnHigh")
        off_speed = self.ranged(element, where, "OffPower", "PowerOffLow", "PowerOffHigh")
        on_seconds = self.seconds(element, where, "OnDuration", on_speed)
        off_seconds = self.seconds(element, where, "OffDuration", off_speed)
        if (
            times is None
            or on_speed is None
            or off_speed is None
            or on_seconds is None
            or off_seconds is None
        ):
            return None
        incline = self.incline(element, where)
        return ImportedRepeat(
            where,
            times,
            [
                ImportedStep(where, on_seconds, on_speed, incline, name="On", cue=cue),
                ImportedStep(where, off_seconds, off_speed, incline, BlockKind.RECOVERY, "Off"),
            ],
        )


def _text_events(element: Element, issues: Issues) -> list[tuple[float, str, Where]]:
    events = []
    for child in element.children:
        where = Where(child.line, f"<{child.tag}>")
        if child.tag.lower() not in ("textevent", "textnotification"):
            if child.tag.lower() != "gameplayevent":
                issues.add(where, f"unknown element <{child.tag}> in <{element.tag}>")
            continue
        message = (child.attrs.get("message") or child.attrs.get("text") or "").strip()
        offset_text = (
            child.attrs.get("timeoffset")
            or child.attrs.get("TimeOffset")
            or child.attrs.get("timeOffset")
            or "0"
        ).strip()
        offset = float(offset_text) if _NUMBER.match(offset_text) else 0.0
        if message:
            events.append((offset, message, where))
    return sorted(events, key=lambda event: event[0])


def _reference(
    root: Element, issues: Issues, pace_ref: Quantity | None
) -> tuple[Quantity | None, bool]:
    """The speed Power 1.0 stands for, and whether it came from the file."""
    threshold = root.child("thresholdSecPerKm")
    if threshold is not None and _NUMBER.match(threshold.text.strip()):
        seconds = exact(threshold.text.strip())
        if seconds > 0:
            return Quantity(3600 / seconds, Unit.KMH), True
    if threshold is not None:
        issues.add(
            Where(threshold.line, "<thresholdSecPerKm>"),
            f"must be seconds per km above zero, got {threshold.text.strip()!r}",
        )
        return None, True
    return pace_ref, False


def read(
    raw: bytes,
    source: str,
    issues: Issues,
    *,
    units: Units | None,
    pace_ref: Quantity | None,
    free_speed: Quantity | None,
    name: str,
) -> ImportedWorkout:
    root = parse_xml(raw, source)
    if root.tag != "workout_file":
        raise issues.fail(
            Where(root.line, f"<{root.tag}>"), "a Zwift workout's root element is <workout_file>"
        )
    for child in root.children:
        if child.tag.lower() not in _HEADER:
            close = difflib.get_close_matches(child.tag, ["sportType", "durationType", "workout"])
            hint = f" (did you mean <{close[0]}>?)" if close else ""
            issues.add(Where(child.line, f"<{child.tag}>"), f"unknown element{hint}")
    sport = root.child_text("sportType")
    if sport is None:
        issues.add(
            Where(root.line, "<workout_file>"),
            "<sportType> is missing: Zwift reads such a file as a bike workout; retrotread "
            "imports run workouts (<sportType>run</sportType>)",
        )
    elif sport.lower() != "run":
        element = root.child("sportType")
        assert element is not None
        issues.add(
            Where(element.line, "<sportType>"),
            f"is {sport!r}: retrotread imports run workouts (Power on a {sport} workout is "
            "watts, not a pace)",
        )
    duration_type = root.child_text("durationType")
    by_distance = False
    if duration_type is None:
        issues.add(
            Where(root.line, "<workout_file>"),
            "<durationType> is missing: a run workout's Duration is seconds or metres; add "
            "<durationType>time</durationType> or <durationType>distance</durationType>",
        )
    elif duration_type.lower() in ("distance", "time"):
        by_distance = duration_type.lower() == "distance"
    else:
        element = root.child("durationType")
        assert element is not None
        issues.add(Where(element.line, "<durationType>"), f"is {duration_type!r}; time or distance")
    reference, from_file = _reference(root, issues, pace_ref)
    ours = (root.child_text("author") or "") == AUTHOR
    workout = root.child("workout")
    if workout is None:
        raise issues.fail(Where(root.line, "<workout_file>"), "<workout> is missing")
    if reference is None and not from_file and sport is not None and sport.lower() == "run":
        issues.add(
            Where(workout.line, "<workout>"),
            "Power in a run workout is a fraction of the runner's pace, so the file gives no "
            "speed: pass --pace-ref with the pace 1.0 stands for (e.g. --pace-ref 20:00/mi), "
            "or add <thresholdSecPerKm>",
        )
    if issues:
        issues.raise_if_any()

    reader = _Reader(issues, reference, free_speed, by_distance, units)
    items: list[ImportedStep | ImportedRepeat] = []
    loose_events: list[tuple[float, str, Where]] = []
    for element in workout.children:
        where = Where(element.line, f"<{element.tag}>")
        tag = element.tag.lower()
        if tag in ("textevent", "textnotification"):
            message = (element.attrs.get("message") or element.attrs.get("text") or "").strip()
            offset = element.attrs.get("timeoffset", "0").strip()
            if message:
                loose_events.append(
                    (float(offset) if _NUMBER.match(offset) else 0.0, message, where)
                )
            continue
        events = _text_events(element, issues)
        cue = "; ".join(message for _, message, _ in events)
        if tag == "steadystate":
            step = reader.steady(element, where, cue)
            new: list[ImportedStep | ImportedRepeat] = [step] if step else []
        elif tag in ("warmup", "cooldown", "ramp"):
            kind = {"warmup": BlockKind.WARM_UP, "cooldown": BlockKind.COOL_DOWN}.get(
                tag, BlockKind.FORWARD
            )
            new = list(reader.ramp(element, where, cue, kind))
        elif tag == "intervalst":
            group = reader.intervals(element, where, cue)
            new = [group] if group else []
        elif tag == "freeride" and element.attrs.get("retrotread_kind") == "turn-around":
            # retrotread's own pause-mode turn: the belt stops, no speed to give
            seconds = reader.seconds(element, where, "Duration", None)
            new = [ImportedStep(where, seconds, None, cue=cue)] if seconds else []
        elif tag in ("freeride", "maxeffort"):
            step = reader.free(element, where, cue)
            new = [step] if step else []
        else:
            close = difflib.get_close_matches(element.tag, SEGMENTS, n=1)
            hint = f" (did you mean <{close[0]}>?)" if close else ""
            issues.add(where, f"unknown element{hint}; expected one of {', '.join(SEGMENTS)}")
            continue
        _apply_marks(element, where, new, issues, ours)
        items.extend(new)
        check_step_budget(items, issues)
    if len(reader.paces) > 1 and not from_file:
        names = sorted(PACE_NAMES.get(pace, f"pace {pace}") for pace in reader.paces)
        issues.add(
            next(iter(reader.paces.values())),
            f"steps refer to different paces of the runner ({', '.join(names)}) but "
            "--pace-ref gives one",
        )
    if not items and not issues:
        issues.add(Where(workout.line, "<workout>"), "the workout has no steps")
    issues.raise_if_any()
    _place_loose_events(items, loose_events)
    title = root.child_text("name") or name
    description = root.child_text("description") or f"Imported from the Zwift workout {name}."
    return ImportedWorkout(title, description, items, FORMAT)


def _apply_marks(
    element: Element,
    where: Where,
    new: list[ImportedStep | ImportedRepeat],
    issues: Issues,
    ours: bool,
) -> None:
    """A block's kind and name as retrotread exported them (``retrotread_kind``)."""
    kind_text = element.attrs.get("retrotread_kind")
    if kind_text is None:
        return
    if kind_text not in {kind.value for kind in BlockKind}:
        issues.add(where, f"retrotread_kind {kind_text!r} is not a block kind")
        return
    for item in new:
        for step in item.steps if isinstance(item, ImportedRepeat) else [item]:
            step.kind = BlockKind(kind_text)
            step.fixed = True
            step.name = element.attrs.get("retrotread_name", step.name)
            if ours:
                step.handrail, step.cue = split_display_cue(step.cue, step.kind)
            if step.kind is BlockKind.TURN_AROUND:
                step.handrail = None
                step.turn_pause = element.tag.lower() == "freeride"
                if step.turn_pause:
                    step.speed = None


def _place_loose_events(
    items: list[ImportedStep | ImportedRepeat], events: list[tuple[float, str, Where]]
) -> None:
    """Text events written straight under <workout> go to the step running at their time."""
    if not events:
        return
    starts: list[tuple[int, ImportedStep]] = []
    clock = 0
    for item in items:
        steps = item.steps * item.times if isinstance(item, ImportedRepeat) else [item]
        for step in steps:
            starts.append((clock, step))
            clock += step.duration_s
    for offset, message, _ in events:
        owner = starts[0][1]
        for start, step in starts:
            if start <= offset:
                owner = step
        owner.cue = f"{owner.cue}; {message}" if owner.cue else message


# -- export --------------------------------------------------------------------------------------


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Characters XML 1.0 cannot carry at all (a program file may hold them) become U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def write(program: Program) -> bytes:
    """The program as a Zwift run workout, every block a SteadyState at its exact speed."""
    speeds = [s.block.speed.to(Unit.KMH).value for s in program.steps if s.block.speed]
    fastest = max(speeds, default=Fraction(5))
    threshold = Fraction(3600) / fastest  # seconds per km at the fastest block: Power <= 1
    root = ET.Element("workout_file")
    ET.SubElement(root, "author").text = AUTHOR
    ET.SubElement(root, "name").text = _xml_text(program.name)
    ET.SubElement(root, "description").text = _xml_text(program.description)
    ET.SubElement(root, "sportType").text = "run"
    ET.SubElement(root, "durationType").text = "time"
    ET.SubElement(root, "thresholdSecPerKm").text = f"{float(threshold):.6f}"
    tags = ET.SubElement(root, "tags")
    ET.SubElement(tags, "tag", name="retrotread")
    workout = ET.SubElement(root, "workout")
    written_threshold = exact(f"{float(threshold):.6f}")
    for step in program.steps:
        block = step.block
        attrs = {"Duration": str(step.duration_s)}
        if block.speed is None:
            tag = "FreeRide"
        else:
            tag = "SteadyState"
            power = block.speed.to(Unit.KMH).value * written_threshold / 3600
            attrs["Power"] = f"{float(power):.6f}"
            attrs["pace"] = "0"
        attrs["Incline"] = format_number(block.incline.value / 100, 4)
        attrs["retrotread_kind"] = block.kind.value
        if block.name:
            attrs["retrotread_name"] = _xml_text(block.name)
        element = ET.SubElement(workout, tag, attrs)
        ET.SubElement(element, "textevent", timeoffset="0", message=_xml_text(step.cue))
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
