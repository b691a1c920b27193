"""From imported steps to a program: retro rules, turn-arounds, TOML, and the loader's checks.

The program is written as TOML and read back with the loader itself, so an import passes exactly
the checks ``retrotread check`` makes — and the file written with ``-o`` is that same text. The
loader names lines of the generated TOML; every such line remembers which element of the source
file it came from, so the user reads the error at the place in *their* file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from retrotread.program.formats.rules import RetroRule, apply_rules
from retrotread.program.formats.source import (
    FILE,
    MAX_IMPORT_STEPS,
    ImportedRepeat,
    ImportedStep,
    ImportedWorkout,
    Where,
    too_many_steps,
)
from retrotread.program.loader import ProgramError, ProgramIssue, parse_program
from retrotread.program.model import MIN_TURN_SECONDS, BlockKind, Defaults, Facing, Program
from retrotread.text import toml_string, without_control
from retrotread.units import Unit, format_number

Item = ImportedStep | ImportedRepeat


@dataclass(frozen=True)
class Imported:
    program: Program
    toml: str
    workout: ImportedWorkout


# -- turn-arounds ------------------------------------------------------------------------------


def _turn(before: ImportedStep | ImportedRepeat) -> ImportedStep:
    """A turn-around before a step (or a round): at that step's incline, so the incline changes
    while the belt is slow and both hands are on the rails, not after the turn."""
    first = before.steps[0] if isinstance(before, ImportedRepeat) else before
    return ImportedStep(
        before.where,
        MIN_TURN_SECONDS,
        None,
        first.incline,
        kind=BlockKind.TURN_AROUND,
        fixed=True,
    )


def _facing(step: ImportedStep) -> Facing:
    return Facing.REAR if step.kind.is_retro else Facing.FRONT


def _round_body(
    group: ImportedRepeat, facing: Facing
) -> tuple[list[ImportedStep], Facing | None, bool, bool]:
    """A repeat group's blocks with the turns it needs inside, the facing it must be entered
    with (None: it has only turns), whether one round leaves the walker turned, and whether a
    turn was added at the end of the round. ``facing`` is the walker's facing before it."""
    body: list[ImportedStep] = []
    entry: Facing | None = None
    turned = False
    for step in group.steps:
        if step.kind is BlockKind.TURN_AROUND:
            body.append(step)
            turned = not turned
            continue
        need = _facing(step)
        if entry is None:
            entry = need.turned if turned else need
        elif (entry.turned if turned else entry) is not need:
            body.append(_turn(step))
            turned = not turned
        body.append(step)
    if entry is not None and turned and group.times > 1:
        # The next round would begin facing the wrong way: close the loop with one more turn,
        # at the start of the round when the walker must turn to enter it anyway (as the
        # built-in programs do), else at its end.
        turned = False
        if entry is facing or body[0].kind is BlockKind.TURN_AROUND:
            body.append(_turn(body[0]))
            return body, entry, turned, True
        body.insert(0, _turn(body[0]))
        entry = entry.turned
    return body, entry, turned, False


def _first_need(rest: list[Item]) -> Facing | None:
    """The facing the next item starts with (None: it starts with a turn, or nothing follows)."""
    if not rest:
        return None
    first = rest[0].steps[0] if isinstance(rest[0], ImportedRepeat) else rest[0]
    return None if first.kind is BlockKind.TURN_AROUND else _facing(first)


def place_turns(items: list[Item]) -> list[Item]:
    """Insert a turn-around wherever the walker's facing must change (the walker starts facing
    the front), inside repeat groups too, so that every round starts facing the same way."""
    facing = Facing.FRONT
    placed: list[Item] = []
    for index, item in enumerate(items):
        if isinstance(item, ImportedStep):
            if item.kind is BlockKind.TURN_AROUND:
                facing = facing.turned
            elif _facing(item) is not facing:
                placed.append(_turn(item))
                facing = facing.turned
            placed.append(item)
            continue
        body, entry, turned, closed_at_end = _round_body(item, facing)
        if entry is not None and entry is not facing:
            placed.append(_turn(item))
            facing = entry
        following = _first_need(items[index + 1 :])
        if closed_at_end and entry is not None and following not in (None, entry):
            # The last round's closing turn would meet the turn the next block needs: the last
            # round goes without it, so the walker does not turn twice in a row.
            rounds = item.times - 1
            if rounds > 1:
                placed.append(ImportedRepeat(item.where, rounds, body, item.name))
            else:
                placed.extend(body)
            placed.extend(body[:-1])
            facing = entry.turned
            continue
        placed.append(ImportedRepeat(item.where, item.times, body, item.name))
        if turned and item.times % 2:
            facing = facing.turned
    return placed


# -- TOML ----------------------------------------------------------------------------------------


def duration_text(seconds: int) -> str:
    """90 -> '1m30s', 3600 -> '1h' (the loader reads both ways; people read this one)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.where: dict[int, Where] = {}

    def emit(self, text: str, where: Where) -> None:
        self.lines.append(text)
        self.where[len(self.lines)] = where

    def block(self, step: ImportedStep, header: str, indent: str) -> None:
        self.emit("", FILE)
        self.emit(f"{indent}{header}", step.where)

        def key(name: str, value: str) -> None:
            self.emit(f"{indent}{name} = {value}", step.where)

        key("kind", toml_string(step.kind.value))
        if without_control(step.name):
            key("name", toml_string(without_control(step.name)))
        is_turn = step.kind is BlockKind.TURN_AROUND
        if not is_turn or step.duration_s != MIN_TURN_SECONDS:
            key("duration", toml_string(duration_text(step.duration_s)))
        if step.turn_pause:
            key("turn", toml_string("pause"))
        elif step.speed is not None:
            if step.speed.unit is Unit.KMH:
                key("speed", toml_string(f"{format_number(step.speed.value)} km/h"))
            else:
                key("speed", format_number(step.speed.to(Unit.MPH).value))
        if step.incline is not None:
            key("incline", format_number(step.incline.value, 1))
        if step.handrail is not None:
            key("handrail", toml_string(step.handrail.value))
        if without_control(step.cue):
            key("cue", toml_string(without_control(step.cue)))


def render(workout: ImportedWorkout, items: list[Item]) -> tuple[str, dict[int, Where]]:
    writer = _Writer()
    # Another app's names and cues are shown and spoken here: their control characters (a
    # terminal escape) are dropped, the words kept.
    name = without_control(workout.name).strip() or "imported"
    writer.emit(f"name = {toml_string(name)}", FILE)
    writer.emit(f"description = {toml_string(without_control(workout.description))}", FILE)
    turns = [
        step
        for item in items
        for step in (item.steps if isinstance(item, ImportedRepeat) else [item])
        if step.kind is BlockKind.TURN_AROUND and step.speed is not None
    ]
    turn_speed = max((s.speed.to(Unit.MPH) for s in turns if s.speed), default=None)
    if turn_speed is not None and turn_speed > Defaults().turn_speed:
        fastest = next(s for s in turns if s.speed and s.speed.to(Unit.MPH) == turn_speed)
        writer.emit("", FILE)
        writer.emit("[defaults]", fastest.where)
        # The file's own turn speed (rounded up, so its turns fit under it); the loader checks
        # it against its 2 mph limit.
        limit = Fraction(math.ceil(turn_speed.value * 100), 100)
        writer.emit(f"turn_speed = {format_number(limit)}", fastest.where)
    for item in items:
        if isinstance(item, ImportedStep):
            writer.block(item, "[[blocks]]", "")
            continue
        writer.emit("", FILE)
        writer.emit("[[blocks]]", item.where)
        writer.emit(f"repeat = {item.times}", item.where)
        if without_control(item.name):
            writer.emit(f"name = {toml_string(without_control(item.name))}", item.where)
        for step in item.steps:
            writer.block(step, "[[blocks.blocks]]", "  ")
    return "\n".join(writer.lines) + "\n", writer.where


# -- the whole way -------------------------------------------------------------------------------

_BLOCK_LABEL = re.compile(r"^(?:block [\d.]+(?: '.*?')?|block '.*?'|repeat group [\d.]+): ")


def _translate(error: ProgramError, where_of: dict[int, Where], source: str) -> ProgramError:
    """The loader's issues, placed at the element of the source file they came from."""
    issues: list[ProgramIssue] = []
    for issue in error.issues:
        where = where_of.get(issue.line or 0, FILE)
        message = _BLOCK_LABEL.sub("", issue.message)
        translated = where.issue(message)
        if translated not in issues:
            issues.append(translated)
    return ProgramError(source, issues)


def build(workout: ImportedWorkout, rules: tuple[RetroRule, ...], source: str) -> Imported:
    """Map retro rules, place turn-arounds, and validate as ``retrotread check`` does."""
    if workout.step_count() > MAX_IMPORT_STEPS:
        raise ProgramError(source, [ProgramIssue(None, too_many_steps(workout.step_count()))])
    for item in workout.items:
        for step in item.steps if isinstance(item, ImportedRepeat) else [item]:
            apply_rules(step, rules)
    items = place_turns(workout.items)
    text, where_of = render(workout, items)
    try:
        program = parse_program(text, source)
    except ProgramError as err:
        raise _translate(err, where_of, source) from err
    return Imported(program, text, workout)
