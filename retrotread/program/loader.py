"""Reading and validating program files (TOML).

A program file looks like this::

    name = "first-week"
    description = "15–30 s backward intervals as active recovery, handrails held."

    [defaults]
    incline = 2.0              # percent
    retro_band = [2.6, 3.2]    # mph
    turn = "slow"              # or "pause": what the belt does during a turn-around
    turn_speed = 1.0           # mph

    [[blocks]]
    kind = "warm-up"
    duration = "3m"
    speed = 2.5                # mph; or a string such as "4.0 km/h"

    [[blocks]]
    repeat = 6

      [[blocks.blocks]]
      kind = "turn-around"

      [[blocks.blocks]]
      kind = "retro"
      duration = "30s"
      speed = 2.8
      handrail = "both-hands"
      cue = "look over your shoulder now and then"

Every mistake is reported with the file, the line and the field, all at once, and a file with
any mistake loads nothing.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from retrotread.errors import RetrotreadError
from retrotread.program.model import (
    MIN_TURN_SECONDS,
    Band,
    Block,
    BlockKind,
    Defaults,
    Facing,
    Handrail,
    Program,
    Repeat,
    TurnMode,
)
from retrotread.text import has_control, printable
from retrotread.units import Quantity, Unit, format_number, mph, parse_speed, percent

MAX_BLOCK_SECONDS = 4 * 3600
MAX_REPEAT = 100
#: 10,000 blocks are about 0.5 MB; a file four times that is no program (and is not read whole).
MAX_PROGRAM_BYTES = 2 * 1024 * 1024
MAX_PROGRAM_CHARS = MAX_PROGRAM_BYTES
SPEED_LIMITS = (mph("0.3"), mph("12"))
INCLINE_LIMITS = (percent(-3), percent(15))

TOP_KEYS = ("name", "description", "defaults", "blocks")
DEFAULT_KEYS = (
    "incline",
    "retro_band",
    "retro_run_band",
    "walk_band",
    "turn",
    "turn_speed",
    "start_facing",
)
BLOCK_KEYS = ("kind", "name", "duration", "speed", "incline", "handrail", "cue", "turn")
GROUP_KEYS = ("repeat", "name", "blocks")


@dataclass(frozen=True)
class ProgramIssue:
    line: int | None
    message: str


class ProgramError(RetrotreadError):
    """A program file could not be loaded; ``issues`` lists every mistake found."""

    def __init__(self, source: str, issues: list[ProgramIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{self.source}:{issue.line}: {issue.message}"
            if issue.line
            else f"{self.source}: {issue.message}"
            for issue in self.issues
        ]


# -- where things are in the file --------------------------------------------------------------

# One pass over the text, in time proportional to its length whatever it holds: every pattern
# here is anchored where it is tried and repeats possessively (``*+``, ``++``), so no input can
# make the regex engine backtrack. Between the tokens that matter (strings, comments, brackets,
# line ends) the engine skips in C.
_BARE_KEY = r"[A-Za-z0-9_\-]++"
_BASIC = r'"(?:[^"\\\n]++|\\.)*+"'
_LITERAL = r"'[^'\n]*+'"
_KEY = rf"(?:{_BARE_KEY}|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_KEY}(?:[ \t]*+\.[ \t]*+{_KEY})*+"
_LINE_START = re.compile(
    rf"[ \t]*+(?:(?P<array>\[\[)[ \t]*+(?P<array_key>{_DOTTED})[ \t]*+\]\]"
    rf"|(?P<table>\[)[ \t]*+(?P<table_key>{_DOTTED})[ \t]*+\]"
    rf"|(?P<key>{_DOTTED})[ \t]*+=)"
)
_KEY_PART = re.compile(_KEY)
_TRIPLE_BASIC = '"' * 3
_TRIPLE_LITERAL = "'" * 3
_TOKEN = re.compile(rf"{_TRIPLE_BASIC}|{_TRIPLE_LITERAL}|{_BASIC}|{_LITERAL}|#[^\n]*+|[\[\]{{}}\n]")
# A multi-line string ends at three quotes; up to two more before them belong to the string.
_END_OF = {
    _TRIPLE_BASIC: re.compile(r'(?:[^"\\]++|\\[\s\S]|"(?!""))*+"{3,5}'),
    _TRIPLE_LITERAL: re.compile(r"(?:[^']++|'(?!''))*+'{3,5}"),
}

# tomllib's work grows with the square of a key's dotted parts (a 40,000-part key: 23 s), so
# a key with more parts than any program has is refused before tomllib sees it. The guard
# starts only where a key can start, so a long word is not rescanned from each of its letters.
MAX_KEY_PARTS = 32
_LONG_KEY = re.compile(rf"(?<![A-Za-z0-9_\-\"'])(?:{_KEY}[ \t]*+\.[ \t]*+){{{MAX_KEY_PARTS}}}")
#: Deeper than this, a file is reported at the line where it got there.
MAX_NESTING = 64
# Python converts at most sys.int_info.default_max_str_digits (4300) digits to an integer.
_LONG_INTEGER = re.compile(r"(?<![\w.])[+-]?\d[\d_]{4300,}")

Path_ = tuple[str | int, ...]


def _key_parts(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _KEY_PART.findall(dotted)]


def locate(text: str) -> dict[Path_, int]:
    """Map each table and key path to the line it is written on.

    tomllib gives values, not positions; this scanner follows table headers and keys the way
    TOML nests them (``[[blocks]]`` then ``[[blocks.blocks]]``) so that errors can name lines.
    Only what starts a line outside any array, inline table or multi-line string is a header
    or a key: an array's ``[1, 2]`` on a line of its own is neither.
    """
    lines: dict[Path_, int] = {}
    counts: dict[Path_, int] = {}
    table: Path_ = ()
    number = 1
    depth = 0  # arrays and inline tables open here
    position = 0
    at_line_start = True
    end = len(text)
    while position < end:
        if at_line_start and depth == 0:
            at_line_start = False
            if start := _LINE_START.match(text, position):
                if start.group("array"):
                    parts = _key_parts(start.group("array_key"))
                    array = (*_resolve(parts[:-1], counts), parts[-1])
                    counts[array] = counts.get(array, 0) + 1
                    table = (*array, counts[array] - 1)
                    lines[table] = number
                elif start.group("table"):
                    parts = _key_parts(start.group("table_key"))
                    table = (*_resolve(parts[:-1], counts), parts[-1])
                    lines[table] = number
                else:
                    path = table
                    for part in _key_parts(start.group("key")):
                        path = (*path, part)
                        lines.setdefault(path, number)
                position = start.end()
                continue
        token = _TOKEN.search(text, position)
        if token is None:
            break
        found = token.group()
        position = token.end()
        if found == "\n":
            number += 1
            at_line_start = True
        elif found in ("[", "{"):
            depth += 1
        elif found in ("]", "}"):
            depth = max(0, depth - 1)
        elif found in _END_OF:
            closing = _END_OF[found].match(text, position)
            stop = closing.end() if closing else end
            number += text.count("\n", position, stop)
            position = stop
    return lines


def _deep_line(text: str) -> int | None:
    """The line where arrays and inline tables first nest deeper than any program needs."""
    depth, number, position = 0, 1, 0
    while token := _TOKEN.search(text, position):
        found, position = token.group(), token.end()
        if found == "\n":
            number += 1
        elif found in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                return number
        elif found in ("]", "}"):
            depth = max(0, depth - 1)
        elif found in _END_OF:
            closing = _END_OF[found].match(text, position)
            stop = closing.end() if closing else len(text)
            number += text.count("\n", position, stop)
            position = stop
    return None


def _resolve(parts: list[str], counts: dict[Path_, int]) -> Path_:
    path: Path_ = ()
    for part in parts:
        path = (*path, part)
        if path in counts:
            path = (*path, counts[path] - 1)
    return path


# -- validation ---------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class _Reader:
    """Collects issues while turning parsed TOML into the model."""

    lines: dict[Path_, int]
    issues: list[ProgramIssue] = field(default_factory=list)
    _seen: set[ProgramIssue] = field(default_factory=set)  # the same issues, to skip repeats

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def error(self, path: Path_, message: str) -> None:
        self.add(ProgramIssue(self.line(path), message))

    def add(self, issue: ProgramIssue) -> None:
        """Keep ``issue`` once (a set: a list scan per issue is quadratic in a long file)."""
        if issue not in self._seen:
            self._seen.add(issue)
            self.issues.append(issue)

    def check_keys(
        self, table: Mapping[str, Any], allowed: tuple[str, ...], path: Path_, where: str
    ) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.error(
                    (*path, key),
                    f"{where}unknown key '{key}'{hint}; allowed: {', '.join(allowed)}",
                )

    def convert(
        self, path: Path_, where: str, name: str, value: Any, parse: Callable[[Any], T]
    ) -> T | None:
        try:
            return parse(value)
        except (ValueError, TypeError) as err:
            self.error(path, f"{where}{name} {err}")
            return None


def _refuse_control_characters(reader: _Reader, value: Any, path: Path_) -> None:
    """Names, titles and cues are shown on screens and spoken: a control character (a
    terminal escape) in one is a mistake to name, not text to pass on."""
    if isinstance(value, str):
        if has_control(value):
            shown = printable(value)
            reader.error(path, f"{'.'.join(map(str, path))} holds a control character: {shown!r}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_control_characters(reader, item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_control_characters(reader, item, (*path, index))


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be text in quotes, got {value!r}")
    return value


def _choice(enum_type: type[Any]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        options = [member.value for member in enum_type]
        if value not in options:
            close = difflib.get_close_matches(str(value), options, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"is {value!r}{hint}; expected one of: {', '.join(options)}")
        return enum_type(value)

    return parse


_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
_CLOCK = re.compile(r"^\s*(\d+):([0-5]\d)\s*$")


def parse_duration(value: Any) -> int:
    """30, "30s", "2m", "1m30s", "1:30" -> seconds (whole seconds only)."""
    seconds: int | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        raise ValueError(f"must be whole seconds, got {value!r}")
    elif isinstance(value, str):
        if match := _CLOCK.match(value):
            seconds = int(match.group(1)) * 60 + int(match.group(2))
        elif (match := _DURATION.match(value)) and any(match.groups()):
            h, m, s = (int(g) if g else 0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
    if seconds is None:
        raise ValueError(f"must be seconds or text like '30s', '2m', '1m30s', got {value!r}")
    if seconds <= 0:
        raise ValueError(f"must be more than zero, got {value!r}")
    if seconds > MAX_BLOCK_SECONDS:
        raise ValueError(f"{seconds} s is longer than the 4-hour limit")
    return seconds


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"must be a number, got {value!r}")
    return value


def _incline(value: Any) -> Quantity:
    incline = percent(_number(value))
    low, high = INCLINE_LIMITS
    if not low <= incline <= high:
        # the number as written: a rounded one could read as inside ("-3 % is outside -3–15")
        raise ValueError(
            f"{value} % is outside {format_number(low.value)}–{format_number(high.value)} %"
        )
    return incline


def _speed(value: Any) -> Quantity:
    speed = parse_speed(value)
    low, high = SPEED_LIMITS
    if not low <= speed.to(Unit.MPH) <= high:
        raise ValueError(
            f"{value if isinstance(value, str) else f'{value} mph'} is outside what any "
            f"treadmill here runs ({format_number(low.value)}–{format_number(high.value)} mph)"
        )
    return speed


def _band(value: Any) -> Band:
    if not isinstance(value, list) or len(value) != 2:
        raise TypeError(f"must be two speeds in mph like [2.6, 3.2], got {value!r}")
    low, high = (mph(_number(v)) for v in value)
    if low > high:
        raise ValueError(f"low end {low} is above high end {high}")
    limit_low, limit_high = SPEED_LIMITS
    if low < limit_low or high > limit_high:
        raise ValueError(f"must lie within {limit_low.value}–{limit_high}")
    return Band(low, high)


def _show(speed: Quantity) -> str:
    return f"{format_number(speed.value)} {speed.unit}"


def _read_defaults(reader: _Reader, table: Any) -> Defaults:
    path: Path_ = ("defaults",)
    defaults = Defaults()
    if table is None:
        return defaults
    if not isinstance(table, dict):
        reader.error(path, "defaults must be a table: [defaults]")
        return defaults
    reader.check_keys(table, DEFAULT_KEYS, path, "defaults: ")
    parsers: dict[str, Callable[[Any], Any]] = {
        "incline": _incline,
        "retro_band": _band,
        "retro_run_band": _band,
        "walk_band": _band,
        "turn": _choice(TurnMode),
        "turn_speed": _speed,
        "start_facing": _choice(Facing),
    }
    values: dict[str, Any] = {}
    for key, parse in parsers.items():
        if key in table:
            value = reader.convert((*path, key), "defaults: ", key, table[key], parse)
            if value is not None:
                values[key] = value
    turn_speed = values.get("turn_speed")
    if turn_speed is not None and turn_speed.to(Unit.MPH) > mph(2):
        reader.error((*path, "turn_speed"), "defaults: turn_speed above 2 mph is not a safe turn")
        del values["turn_speed"]
    return Defaults(**values)


def _label(number: str, table: Mapping[str, Any]) -> str:
    title = table.get("name") or table.get("kind") or ""
    return (
        f"block {number} '{title}': " if isinstance(title, str) and title else f"block {number}: "
    )


def _read_block(
    reader: _Reader, table: Any, path: Path_, number: str, defaults: Defaults
) -> Block | None:
    if not isinstance(table, dict):
        reader.error(path, f"block {number}: must be a table ([[blocks]])")
        return None
    where = _label(number, table)
    reader.check_keys(table, BLOCK_KEYS, path, where)
    before = len(reader.issues)

    kind: BlockKind | None = None
    if "kind" not in table:
        reader.error(path, f"{where}kind is missing; expected one of: {', '.join(BlockKind)}")
    else:
        kind = reader.convert((*path, "kind"), where, "kind", table["kind"], _choice(BlockKind))
    is_turn = kind is BlockKind.TURN_AROUND

    duration: int | None = MIN_TURN_SECONDS if is_turn else None
    if "duration" in table:
        duration = reader.convert(
            (*path, "duration"), where, "duration", table["duration"], parse_duration
        )
        if is_turn and duration is not None and duration < MIN_TURN_SECONDS:
            reader.error(
                (*path, "duration"),
                f"{where}duration {duration} s is too short: a turn-around takes at least "
                f"{MIN_TURN_SECONDS} s",
            )
    elif not is_turn:
        reader.error(path, f'{where}duration is missing (e.g. duration = "30s")')

    speed: Quantity | None = None
    turn_mode = defaults.turn
    if is_turn and "turn" in table:
        turn_mode = (
            reader.convert((*path, "turn"), where, "turn", table["turn"], _choice(TurnMode))
            or turn_mode
        )
    elif "turn" in table:
        reader.error((*path, "turn"), f"{where}turn applies only to turn-around blocks")
    if "speed" in table:
        speed = reader.convert((*path, "speed"), where, "speed", table["speed"], _speed)
    elif is_turn:
        speed = defaults.turn_speed
    elif kind is not None:
        reader.error(path, f"{where}speed is missing (e.g. speed = 2.8 for mph)")
    if is_turn and turn_mode is TurnMode.PAUSE:
        speed = None

    if speed is not None and kind is not None:
        allowed = defaults.band_for(kind)
        shown = _show(speed)
        what = {
            BlockKind.RETRO: "the retro band",
            BlockKind.RETRO_RUN: "the retro-run band",
            BlockKind.TURN_AROUND: "the turn speed",
        }.get(kind, "the walking band")
        if speed.to(Unit.MPH) > allowed.high:
            limit = str(allowed.high) if is_turn else str(allowed)
            reader.error((*path, "speed"), f"{where}speed {shown} is above {what} {limit}")
        elif speed.to(Unit.MPH) < allowed.low:
            reader.error((*path, "speed"), f"{where}speed {shown} is below {what} {allowed}")

    incline = defaults.incline
    if "incline" in table:
        incline = (
            reader.convert((*path, "incline"), where, "incline", table["incline"], _incline)
            or incline
        )

    default_handrail = (
        Handrail.BOTH_HANDS if kind is None or kind.is_retro or is_turn else Handrail.HANDS_FREE
    )
    handrail = default_handrail
    if "handrail" in table:
        handrail = (
            reader.convert(
                (*path, "handrail"), where, "handrail", table["handrail"], _choice(Handrail)
            )
            or handrail
        )
        if is_turn and handrail is not Handrail.BOTH_HANDS:
            reader.error(
                (*path, "handrail"),
                f"{where}handrail must be 'both-hands' during a turn-around",
            )

    name = reader.convert((*path, "name"), where, "name", table.get("name", ""), _string) or ""
    cue = reader.convert((*path, "cue"), where, "cue", table.get("cue", ""), _string) or ""

    if len(reader.issues) > before or kind is None or duration is None:
        return None
    return Block(
        kind=kind,
        duration_s=duration,
        speed=speed,
        incline=incline,
        handrail=handrail,
        name=name,
        cue=cue,
        line=reader.line(path),
    )


def _read_group(
    reader: _Reader, table: dict[str, Any], path: Path_, number: str, defaults: Defaults
) -> Repeat | None:
    where = f"repeat group {number}: "
    reader.check_keys(table, GROUP_KEYS, path, where)
    times = table.get("repeat")
    if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_REPEAT:
        reader.error(
            (*path, "repeat"), f"{where}repeat must be a whole number 1–{MAX_REPEAT}, got {times!r}"
        )
        times = None
    children = table.get("blocks")
    if not isinstance(children, list) or not children:
        reader.error(path, f"{where}needs its blocks as [[blocks.blocks]] tables")
        return None
    blocks: list[Block] = []
    for i, child in enumerate(children):
        child_path = (*path, "blocks", i)
        child_number = f"{number}.{i + 1}"
        if isinstance(child, dict) and "repeat" in child:
            reader.error(child_path, f"block {child_number}: repeat groups cannot be nested")
            continue
        block = _read_block(reader, child, child_path, child_number, defaults)
        if block is not None:
            blocks.append(block)
    name = table.get("name", "")
    if times is None or len(blocks) != len(children):
        return None
    return Repeat(times=times, blocks=tuple(blocks), name=name if isinstance(name, str) else "")


def _check_facing(reader: _Reader, program: Program) -> None:
    """A retro block needs the walker facing the rear, a forward block facing the front."""
    for step in program.steps:
        block = step.block
        where = f"block '{block.title}': "
        if block.kind is BlockKind.TURN_AROUND:
            continue
        if block.kind.is_retro and step.facing is Facing.FRONT:
            message = "the walker faces the front here; put a turn-around before this retro block"
        elif not block.kind.is_retro and step.facing is Facing.REAR:
            message = (
                f"the walker still faces the rear here; put a turn-around before this "
                f"{block.kind} block"
            )
        else:
            continue
        reader.add(ProgramIssue(block.line, where + message))


def _refuse_what_tomllib_chokes_on(text: str, source: str) -> None:
    """Text too long to parse in a moment, or a key tomllib's time squares on."""
    if len(text) > MAX_PROGRAM_CHARS:
        raise ProgramError(source, [ProgramIssue(None, _too_large(len(text), "characters"))])
    if too_long := _LONG_KEY.search(text):
        line = text.count("\n", 0, too_long.start()) + 1
        message = f"a key of more than {MAX_KEY_PARTS} dotted parts; program keys have a few"
        raise ProgramError(source, [ProgramIssue(line, message)])


def parse_program(text: str, source: str = "<string>") -> Program:
    """Parse and validate a program; raise :class:`ProgramError` listing every mistake."""
    _refuse_what_tomllib_chokes_on(text, source)
    line: int | None
    try:
        data = tomllib.loads(text)
    except RecursionError as err:  # tomllib descends once per array or inline table
        message = "arrays or tables nested too deep; program files nest a few levels"
        raise ProgramError(source, [ProgramIssue(_deep_line(text), message)]) from err
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if not match and "end of document" in message:
            line = text.count("\n") + 1
        raise ProgramError(source, [ProgramIssue(line, f"not valid TOML: {reason}")]) from err
    except ValueError as err:  # an integer longer than Python converts (sys.int_info)
        long_number = _LONG_INTEGER.search(text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else None
        message = "a number with thousands of digits; program numbers have a few"
        raise ProgramError(source, [ProgramIssue(line, message)]) from err

    reader = _Reader(locate(text))
    reader.check_keys(data, TOP_KEYS, (), "")
    _refuse_control_characters(reader, data, ())
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        reader.error(("name",), 'name is missing: every program needs name = "..."')
        name = ""
    description = data.get("description", "")
    if not isinstance(description, str):
        reader.error(("description",), "description must be text in quotes")
        description = ""
    defaults = _read_defaults(reader, data.get("defaults"))

    raw_blocks = data.get("blocks")
    items: list[Block | Repeat] = []
    if not isinstance(raw_blocks, list) or not raw_blocks:
        reader.error(("blocks",), "the program has no blocks: add [[blocks]] tables")
        raw_blocks = []
    for i, table in enumerate(raw_blocks):
        path: Path_ = ("blocks", i)
        if isinstance(table, dict) and "repeat" in table:
            group = _read_group(reader, table, path, str(i + 1), defaults)
            if group is not None:
                items.append(group)
        else:
            block = _read_block(reader, table, path, str(i + 1), defaults)
            if block is not None:
                items.append(block)

    if not reader.issues:
        program = Program(
            name=name.strip(),
            description=description.strip(),
            items=tuple(items),
            defaults=defaults,
            source=source,
        )
        _check_facing(reader, program)
        if not reader.issues:
            return program
    raise ProgramError(source, reader.issues)


def load_program(path: Path) -> Program:
    """Read a program file; errors name the file as the user gave it."""
    source = str(path)
    raw = read_small_file(path, MAX_PROGRAM_BYTES, "program file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ProgramError(source, [ProgramIssue(line, "is not UTF-8 text")]) from err
    return parse_program(text, source)


def _too_large(size: int, unit: str) -> str:
    return (
        f"is {size:,} {unit}; a program file is small (10,000 blocks are about 0.5 MB), "
        f"at most {MAX_PROGRAM_BYTES // (1024 * 1024)} MiB are read"
    )


def read_small_file(path: Path, limit: int, kind: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else :class:`ProgramError`.

    A device, fifo or socket is refused before anything is read (``/dev/zero`` never ends, a
    fifo waits for a writer), and no more than ``limit`` bytes are ever read.
    """
    source = str(path)

    def refuse(message: str) -> ProgramError:
        return ProgramError(source, [ProgramIssue(None, message)])

    try:
        # O_NONBLOCK: opening a fifo must not wait for a writer before we can refuse it.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as err:
        raise refuse("no such file") from err
    except IsADirectoryError as err:
        raise refuse(f"is a directory, not a {kind}") from err
    except OSError as err:
        raise refuse(f"cannot be read: {err.strerror}") from err
    try:
        info = os.fstat(descriptor)
        if stat.S_ISDIR(info.st_mode):
            raise refuse(f"is a directory, not a {kind}")
        if not stat.S_ISREG(info.st_mode):
            raise refuse(f"is not a regular file (a device, fifo or socket); give a {kind}")
        at_most = f"{kind}s are small, at most {limit // 1024} KiB are read"
        if info.st_size > limit:
            raise refuse(f"is {info.st_size:,} bytes; {at_most}")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while we read it
            raise refuse(f"is larger than {limit // 1024} KiB; {at_most}")
        return b"".join(chunks)
    except OSError as err:
        raise refuse(f"cannot be read: {err.strerror}") from err
    finally:
        os.close(descriptor)
