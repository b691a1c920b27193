"""FIT workout files (``.fit``), read and written with Garmin's FIT SDK (``garmin-fit-sdk``).

A workout file is a File ID (type *workout*), one Workout message (name, sport) and Workout Step
messages: a duration (time or distance), a target (a speed range in m/s, or open), an intensity
(warm-up, active, interval, recovery, rest, cool-down), a step name and notes. A repeat is a step
of its own, after the steps it repeats: *repeat until steps complete*, from step ``duration_step``,
``repeat_steps`` times in all (the FIT profile's ``wkt_step_duration`` and sub-fields).

A speed range plays at its middle. Written files say ``product_name = "retrotread"`` in their
File ID; only then are *interval* steps read back as retro (or retro-run, above the retro band)
and *rest* steps as turn-arounds — in anyone else's file they are ordinary forward and recovery
steps for ``--retro`` rules to map. FIT has no incline target, so inclines are not carried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, cast

from garmin_fit_sdk import Decoder, Encoder, Profile, Stream

from retrotread.program.formats.source import (
    MAX_IMPORT_STEPS,
    ImportedRepeat,
    ImportedStep,
    ImportedWorkout,
    Issues,
    Units,
    Where,
    seconds_over,
    speed_in,
    split_display_cue,
    to_seconds,
)
from retrotread.program.model import Block as ProgramBlock
from retrotread.program.model import BlockKind, Defaults, Program, Repeat
from retrotread.units import Quantity, Unit, exact

FORMAT = "FIT workout"
PRODUCT = "retrotread"
MESG = Profile["mesg_num"]

#: FIT intensity for each block kind, and back (a file retrotread wrote)
INTENSITY = {
    BlockKind.WARM_UP: "warmup",
    BlockKind.COOL_DOWN: "cooldown",
    BlockKind.RECOVERY: "recovery",
    BlockKind.RETRO: "interval",
    BlockKind.RETRO_RUN: "interval",
    BlockKind.TURN_AROUND: "rest",
    BlockKind.FORWARD: "active",
}
#: what a step's intensity makes of it in a file from anyone else
FOREIGN_KIND = {
    "warmup": BlockKind.WARM_UP,
    "cooldown": BlockKind.COOL_DOWN,
    "recovery": BlockKind.RECOVERY,
    "rest": BlockKind.RECOVERY,
}
MPS_PER_MPH = Fraction("0.44704")
MAX_MESSAGES = MAX_IMPORT_STEPS + 100  # the steps, and room for headers and developer data


class _TooMany(Exception):
    """Raised inside the decoder to stop it; the decoder hands it back among its errors."""


# -- import --------------------------------------------------------------------------------------


def _decode(raw: bytes, source: str, issues: Issues) -> dict[str, list[dict[str, Any]]]:
    where = Where(None, "")
    try:
        checker = Decoder(Stream.from_byte_array(bytearray(raw)))
        if not checker.is_fit():
            raise issues.fail(where, "is not a FIT file (no FIT header)")
        if not checker.check_integrity():
            raise issues.fail(where, "FIT data is damaged (its size or checksum does not match)")
        decoder = Decoder(Stream.from_byte_array(bytearray(raw)))  # the checks read it through
        count = 0

        def count_messages(number: int, message: object) -> None:
            nonlocal count
            count += 1
            if count > MAX_MESSAGES:  # decoding is slow: stop a file that is no workout early
                raise _TooMany

        messages, errors = decoder.read(
            convert_datetimes_to_dates=False, mesg_listener=count_messages
        )
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError) as err:
        # the SDK raises what its parsing happens to meet; a broken file is all it means here
        raise issues.fail(where, f"FIT data cannot be decoded: {err}") from err
    if any(isinstance(error, _TooMany) for error in errors):
        raise issues.fail(
            where,
            f"has more than {MAX_MESSAGES} messages; a workout file has one per step and at "
            f"most {MAX_IMPORT_STEPS} steps are imported",
        )
    if errors:
        raise issues.fail(where, f"FIT data cannot be decoded: {errors[0]}")
    # read generically: which fields a foreign file holds is not known before looking
    return cast(dict[str, list[dict[str, Any]]], messages)


def _text(value: Any) -> str:
    if isinstance(value, list):  # a string the SDK split into parts
        value = "".join(str(part) for part in value if part is not None)
    return value.strip() if isinstance(value, str) else ""


class _Reader:
    def __init__(
        self, issues: Issues, units: Units | None, free_speed: Quantity | None, ours: bool
    ):
        self.issues = issues
        self.units = units
        self.free_speed = free_speed
        self.ours = ours

    def speed(self, step: dict[str, Any], where: Where) -> Quantity | None:
        target = step.get("target_type")
        if target == "speed":
            low, high = step.get("custom_target_speed_low"), step.get("custom_target_speed_high")
            if isinstance(low, int | float) and isinstance(high, int | float) and high > 0:
                return speed_in((exact(low) + exact(high)) / 2, self.units)
            zone = step.get("target_speed_zone") or step.get("target_value")
            if zone:
                self.issues.add(
                    where,
                    f"targets speed zone {zone}, which lives on the watch; retrotread needs the "
                    "speed itself (a custom speed range)",
                )
            else:
                self.issues.add(where, "has a speed target without a speed (custom range 0–0)")
            return None
        if target in (None, "open"):
            if self.free_speed is None:
                self.issues.add(
                    where,
                    "has no speed target; pass --free-speed (e.g. 2.5mph) to walk it at one speed",
                )
            return self.free_speed
        self.issues.add(
            where, f"targets {str(target).replace('_', ' ')}; retrotread needs a speed target"
        )
        return None

    def step(self, step: dict[str, Any], where: Where) -> ImportedStep | None:
        intensity = step.get("intensity")
        turn = self.ours and intensity == "rest"
        if turn and step.get("target_type") in (None, "open"):
            speed = None  # retrotread's pause-mode turn-around
        else:
            speed = self.speed(step, where)
        duration_type = step.get("duration_type")
        seconds: int | None = None
        if duration_type in ("time", "repetition_time"):
            value = step.get("duration_time")
            if isinstance(value, int | float) and value > 0:
                seconds = to_seconds(value)
            else:
                self.issues.add(where, f"duration_time must be above zero, got {value!r}")
        elif duration_type == "distance":
            metres = step.get("duration_distance")
            if not isinstance(metres, int | float) or metres <= 0:
                self.issues.add(where, f"duration_distance must be above zero, got {metres!r}")
            elif speed is not None and speed.value > 0:
                seconds = seconds_over(exact(metres), speed)
        elif duration_type == "open":
            self.issues.add(
                where, "ends when the lap button is pressed; retrotread needs a time or distance"
            )
        else:
            self.issues.add(
                where,
                f"duration_type {duration_type!r} is not supported; use time or distance",
            )
        if seconds is None or (speed is None and not turn):
            return None
        name = _text(step.get("wkt_step_name"))
        cue = _text(step.get("notes"))
        kind = FOREIGN_KIND.get(str(intensity), BlockKind.FORWARD)
        handrail = None
        if self.ours:
            kind = {
                "warmup": BlockKind.WARM_UP,
                "cooldown": BlockKind.COOL_DOWN,
                "recovery": BlockKind.RECOVERY,
                "rest": BlockKind.TURN_AROUND,
                "interval": BlockKind.RETRO,
            }.get(str(intensity), BlockKind.FORWARD)
            fast = speed is not None and speed.to(Unit.MPH) > Defaults().retro_band.high
            if kind is BlockKind.RETRO and fast:
                kind = BlockKind.RETRO_RUN
            handrail, cue = split_display_cue(cue, kind)
        return ImportedStep(
            where,
            seconds,
            speed,
            kind=kind,
            name=name,
            cue=cue,
            handrail=handrail,
            fixed=self.ours,
            turn_pause=turn and speed is None,
        )


def read(
    raw: bytes,
    source: str,
    issues: Issues,
    *,
    units: Units | None,
    free_speed: Quantity | None,
    name: str,
) -> ImportedWorkout:
    messages = _decode(raw, source, issues)
    file_id = (messages.get("file_id_mesgs") or [{}])[0]
    file_type = file_id.get("type")
    if file_type not in (None, "workout"):
        raise issues.fail(
            Where(None, "file_id"),
            f"is a FIT {file_type} file, not a workout; retrotread imports workout files",
        )
    ours = (
        file_id.get("manufacturer") == "development"
        and _text(file_id.get("product_name")) == PRODUCT
    )
    workout = (messages.get("workout_mesgs") or [{}])[0]
    sport = workout.get("sport")
    if sport not in (None, "running", "walking", "generic", "fitness_equipment", "training"):
        issues.add(
            Where(None, "workout"),
            f"is a {str(sport).replace('_', ' ')} workout; retrotread imports walking and "
            "running workouts",
        )

    def by_index(message: dict[str, Any]) -> int:
        index = message.get("message_index")
        return index if isinstance(index, int) else 0

    steps = sorted(messages.get("workout_step_mesgs") or [], key=by_index)
    if not steps:
        raise issues.fail(Where(None, "workout"), "has no workout steps")
    reader = _Reader(issues, units, free_speed, ours)
    placed: list[tuple[int, ImportedStep | ImportedRepeat]] = []
    for position, message in enumerate(steps):
        index = message.get("message_index")
        index = index if isinstance(index, int) else position
        where = Where(None, f"workout step {index}")
        duration_type = message.get("duration_type")
        if duration_type == "repeat_until_steps_cmplt":
            _group(placed, message, index, where, issues)
        elif isinstance(duration_type, str) and duration_type.startswith("repeat_until"):
            issues.add(where, f"{duration_type.replace('_', ' ')} is not supported; repeat a count")
        else:
            step = reader.step(message, where)
            if step is not None:
                placed.append((index, step))
    issues.raise_if_any()
    title = _text(workout.get("wkt_name")) or name
    description = _text(workout.get("wkt_description")) or f"Imported from the FIT workout {name}."
    return ImportedWorkout(title, description, [item for _, item in placed], FORMAT)


def _group(
    placed: list[tuple[int, ImportedStep | ImportedRepeat]],
    message: dict[str, Any],
    index: int,
    where: Where,
    issues: Issues,
) -> None:
    """A repeat step: the steps from ``duration_step`` up to it become one repeat group."""
    first = message.get("duration_step")
    times = message.get("repeat_steps")
    if not isinstance(times, int) or times < 1:
        issues.add(where, f"repeat_steps must be a whole number of rounds, got {times!r}")
        return
    start = next((n for n, (i, _) in enumerate(placed) if i == first), None)
    if not isinstance(first, int) or first >= index or start is None:
        issues.add(where, f"repeats from step {first!r}, which is not a step before it")
        return
    body = placed[start:]
    if any(isinstance(item, ImportedRepeat) for _, item in body):
        issues.add(where, "repeats inside repeats are not supported")
        return
    steps = [item for _, item in body if isinstance(item, ImportedStep)]
    del placed[start:]
    placed.append((first, ImportedRepeat(where, times, steps)))


# -- export --------------------------------------------------------------------------------------


def _fit_text(text: str) -> str:
    """FIT strings hold at most 255 bytes with their terminating zero: cut at a whole char."""
    data = text.encode("utf-8")
    if len(data) <= 254:
        return text
    return data[:251].decode("utf-8", errors="ignore") + "…"


def _step_message(index: int, block: ProgramBlock, cue: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "mesg_num": MESG["WORKOUT_STEP"],
        "message_index": index,
        "wkt_step_name": _fit_text(block.title),
        "duration_type": "time",
        "duration_value": block.duration_s * 1000,  # duration_time, in ms
        "intensity": INTENSITY[block.kind],
        "notes": _fit_text(cue),
    }
    if block.speed is None:
        message["target_type"] = "open"
    else:
        mm_per_second = round(block.speed.to(Unit.MPH).value * MPS_PER_MPH * 1000)
        message["target_type"] = "speed"
        message["target_value"] = 0  # 0: a custom range, not a zone
        message["custom_target_value_low"] = mm_per_second  # custom_target_speed_low, mm/s
        message["custom_target_value_high"] = mm_per_second
    return message


def write(program: Program, created: datetime | None = None) -> bytes:
    """The program as a FIT workout file, repeat groups kept, cues in each step's notes."""
    running = any(step.kind is BlockKind.RETRO_RUN for step in program.steps)
    moment = created or datetime.now(UTC)
    messages: list[dict[str, Any]] = [
        {
            "mesg_num": MESG["FILE_ID"],
            "type": "workout",
            "manufacturer": "development",
            "product": 0,
            "product_name": PRODUCT,
            "time_created": round(moment.timestamp()) - 631065600,  # FIT epoch 1989-12-31
        }
    ]
    cues = {id(step.block): step.cue for step in program.steps}  # first round's cue per block
    steps: list[dict[str, Any]] = []
    for item in program.items:
        if isinstance(item, ProgramBlock):
            steps.append(_step_message(len(steps), item, cues.get(id(item), item.cue)))
            continue
        assert isinstance(item, Repeat)
        first = len(steps)
        for block in item.blocks:
            steps.append(_step_message(len(steps), block, cues.get(id(block), block.cue)))
        steps.append(
            {
                "mesg_num": MESG["WORKOUT_STEP"],
                "message_index": len(steps),
                "duration_type": "repeat_until_steps_cmplt",
                "duration_value": first,  # duration_step
                "target_type": "open",
                "target_value": item.times,  # repeat_steps: rounds in all
            }
        )
    messages.append(
        {
            "mesg_num": MESG["WORKOUT"],
            "sport": "running" if running else "walking",
            "sub_sport": "treadmill" if running else "indoor_walking",
            "num_valid_steps": len(steps),
            "wkt_name": _fit_text(program.name),
            "wkt_description": _fit_text(program.description),
        }
    )
    encoder = Encoder()
    for message in messages + steps:
        encoder.write_mesg(message)
    return bytes(encoder.close())
