"""CSAFE, the controller's side: frames, byte stuffing, commands and responses.

A pure codec (no I/O). Byte-level rules, from the CSAFE specification:

* Standard frame ``F1 <contents> <checksum> F2``; extended ``F0 <dst> <src> <contents>
  <checksum> F2``. The checksum is the XOR of the content bytes.
* Between the start and stop flags, any byte F0–F3 (contents, addresses and checksum alike)
  travels as ``F3 <byte & 0x03>``. A frame is at most 96 bytes on the wire.
* Commands: short ones (id >= 0x80) carry no data; long ones are ``<id> <len> <data>``.
* A response is a status byte, then ``<id> <len> <data>`` only for the commands that return
  data (the Get commands): a Set or Go command is answered by the status byte alone, and
  ``GetStatus`` either adds nothing (Matrix console firmware) or ``80 01 <status>`` (Concept2 PM
  CSAFE definition). Status bits 0–3 are the machine state, bits 4–5 how a frame went, bit 7
  the frame toggle. What the driver makes of the bits, and why: ``docs/csafe.md``.

Everything that does not decode raises :class:`~retrotread.errors.ProtocolError` and nothing
else; :class:`FrameDecoder` never raises at all — it hands errors back in line with frames, and
resynchronises on the next start flag, so a good frame after garbage is still read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction

from retrotread.errors import ProtocolError
from retrotread.units import Increment, Quantity, Unit

EXTENDED_START = 0xF0
STANDARD_START = 0xF1
STOP_FLAG = 0xF2
STUFF_FLAG = 0xF3
MAX_FRAME_BYTES = 96

_FLAGS = frozenset((EXTENDED_START, STANDARD_START, STOP_FLAG, STUFF_FLAG))


class MachineState(enum.IntEnum):
    ERROR = 0
    READY = 1
    IDLE = 2
    HAVE_ID = 3
    IN_USE = 5
    PAUSED = 6
    FINISHED = 7
    MANUAL = 8
    OFFLINE = 9


class PreviousFrame(enum.IntEnum):
    OK = 0
    REJECTED = 1
    BAD = 2
    NOT_READY = 3


#: what a frame's bits say when the console did not carry it out
REFUSED = frozenset((PreviousFrame.REJECTED, PreviousFrame.NOT_READY))


class CommandId(enum.IntEnum):
    SET_TIMEOUT = 0x13
    SET_SPEED = 0x25
    SET_GRADE = 0x28
    GET_STATUS = 0x80
    RESET = 0x81
    GO_IDLE = 0x82
    GO_HAVE_ID = 0x83
    GO_IN_USE = 0x85
    GO_FINISHED = 0x86
    GO_READY = 0x87
    GET_UNITS = 0x93
    GET_TWORK = 0xA0
    GET_HORIZONTAL = 0xA1
    GET_SPEED = 0xA5
    GET_GRADE = 0xA8


def _name(ident: int) -> str:
    try:
        return CommandId(ident).name
    except ValueError:
        return f"0x{ident:02X}"


# -- units ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WireUnit:
    """A CSAFE unit code and the exact amount one count stands for."""

    code: int
    resolution: Increment

    def quantity(self, count: int) -> Quantity:
        return Quantity(count * self.resolution.size, self.resolution.unit)

    def count(self, value: Quantity) -> int:
        count = value.to(self.resolution.unit).value / self.resolution.size
        if count.denominator != 1:
            raise ValueError(f"{value} is not a whole number of {self.resolution}")
        return int(count)


SPEED_UNITS = {
    unit.code: unit
    for unit in (
        WireUnit(0x10, Increment.of(1, Unit.MPH)),
        WireUnit(0x11, Increment.of("0.1", Unit.MPH)),
        WireUnit(0x12, Increment.of("0.01", Unit.MPH)),
        WireUnit(0x30, Increment.of(1, Unit.KMH)),
        WireUnit(0x31, Increment.of("0.1", Unit.KMH)),
        WireUnit(0x32, Increment.of("0.01", Unit.KMH)),
    )
}
GRADE_UNITS = {
    unit.code: unit
    for unit in (
        WireUnit(0x4A, Increment.of(1, Unit.PERCENT)),
        WireUnit(0x4B, Increment.of("0.01", Unit.PERCENT)),
        WireUnit(0x4C, Increment.of("0.1", Unit.PERCENT)),
    )
}
#: distance unit code -> metres per count (CSAFE unit table)
DISTANCE_UNITS: dict[int, Fraction] = {
    0x01: Fraction("1609.344"),
    0x02: Fraction("160.9344"),
    0x03: Fraction("16.09344"),
    0x21: Fraction(1000),
    0x22: Fraction(100),
    0x23: Fraction(10),
    0x24: Fraction(1),
}

_SPEED_NAMES = {"mph": 0x10, "0.1mph": 0x11, "0.01mph": 0x12}
_SPEED_NAMES |= {"kmh": 0x30, "0.1kmh": 0x31, "0.01kmh": 0x32}
_GRADE_NAMES = {"%": 0x4A, "1%": 0x4A, "0.01%": 0x4B, "0.1%": 0x4C}


def _normalise(name: str) -> str:
    text = name.lower().replace(" ", "").replace("/", "").replace("kph", "kmh")
    return text.replace("percent", "%")


def speed_unit_named(name: str) -> WireUnit:
    """``"0.1 mph"``, ``"0.01km/h"`` ... -> the CSAFE speed unit."""
    code = _SPEED_NAMES.get(_normalise(name))
    if code is None:
        raise ValueError(f"unknown CSAFE speed unit {name!r}; known: {', '.join(_SPEED_NAMES)}")
    return SPEED_UNITS[code]


def grade_unit_named(name: str) -> WireUnit:
    code = _GRADE_NAMES.get(_normalise(name))
    if code is None:
        raise ValueError(f"unknown CSAFE grade unit {name!r}; known: {', '.join(_GRADE_NAMES)}")
    return GRADE_UNITS[code]


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    ident: int
    data: bytes = b""

    @property
    def short(self) -> bool:
        return self.ident >= 0x80

    @property
    def name(self) -> str:
        return _name(self.ident)

    def encode(self) -> bytes:
        if self.short:
            if self.data:
                raise ValueError(f"short command {self.name} carries no data")
            return bytes((self.ident,))
        if len(self.data) > 0xFF:
            raise ValueError(f"{self.name}: {len(self.data)} bytes of data is too long")
        return bytes((self.ident, len(self.data))) + self.data


GET_STATUS = Command(CommandId.GET_STATUS)
RESET = Command(CommandId.RESET)
GO_IDLE = Command(CommandId.GO_IDLE)
GO_HAVE_ID = Command(CommandId.GO_HAVE_ID)
GO_IN_USE = Command(CommandId.GO_IN_USE)
GO_FINISHED = Command(CommandId.GO_FINISHED)
GO_READY = Command(CommandId.GO_READY)
GET_SPEED = Command(CommandId.GET_SPEED)
GET_GRADE = Command(CommandId.GET_GRADE)
GET_HORIZONTAL = Command(CommandId.GET_HORIZONTAL)
GET_TWORK = Command(CommandId.GET_TWORK)


def _amount(ident: CommandId, count: int, unit: WireUnit) -> Command:
    if not 0 <= count <= 0xFFFF:
        raise ValueError(f"{ident.name}: {count} does not fit in 16 bits")
    return Command(ident, count.to_bytes(2, "little") + bytes((unit.code,)))


def set_speed(value: Quantity, unit: WireUnit) -> Command:
    """SetSpeed: 2.6 mph in 0.1 mph -> ``25 03 1A 00 11``."""
    return _amount(CommandId.SET_SPEED, unit.count(value), unit)


def set_grade(value: Quantity, unit: WireUnit) -> Command:
    """SetGrade: 2.0 % in 0.1 % -> ``28 03 14 00 4C``."""
    return _amount(CommandId.SET_GRADE, unit.count(value), unit)


def encode_commands(commands: list[Command] | tuple[Command, ...]) -> bytes:
    return b"".join(command.encode() for command in commands)


# -- frames -----------------------------------------------------------------------------------


def checksum(contents: bytes) -> int:
    value = 0
    for byte in contents:
        value ^= byte
    return value


def stuff(data: bytes) -> bytes:
    out = bytearray()
    for byte in data:
        if byte in _FLAGS:
            out += bytes((STUFF_FLAG, byte & 0x03))
        else:
            out.append(byte)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            if byte > 0x03:
                raise ProtocolError(f"CSAFE: F3 {byte:02X} is not a valid stuffed byte")
            out.append(0xF0 | byte)
            escaped = False
        elif byte == STUFF_FLAG:
            escaped = True
        elif byte in _FLAGS:
            raise ProtocolError(f"CSAFE: flag {byte:02X} inside a frame")
        else:
            out.append(byte)
    if escaped:
        raise ProtocolError("CSAFE: frame ends inside a stuffed byte")
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    contents: bytes
    destination: int | None = None
    source: int | None = None

    @property
    def extended(self) -> bool:
        return self.destination is not None

    def encode(self) -> bytes:
        trailer = bytes((checksum(self.contents),))
        if self.destination is None or self.source is None:
            body, start = self.contents + trailer, STANDARD_START
        else:
            body = bytes((self.destination, self.source)) + self.contents + trailer
            start = EXTENDED_START
        wire = bytes((start,)) + stuff(body) + bytes((STOP_FLAG,))
        if len(wire) > MAX_FRAME_BYTES:
            raise ValueError(f"CSAFE frame of {len(wire)} bytes exceeds {MAX_FRAME_BYTES}")
        return wire


def encode_frame(
    commands: list[Command] | tuple[Command, ...],
    *,
    destination: int | None = None,
    source: int = 0x00,
) -> bytes:
    """The wire bytes of a frame carrying ``commands`` (extended when ``destination`` is set)."""
    contents = encode_commands(commands)
    if not contents:
        raise ValueError("a CSAFE frame carries at least one command")
    if destination is None:
        return Frame(contents).encode()
    return Frame(contents, destination, source).encode()


def decode_frame(wire: bytes) -> Frame:
    """One whole frame, start flag to stop flag inclusive."""
    if len(wire) > MAX_FRAME_BYTES:
        raise ProtocolError(f"CSAFE: {len(wire)}-byte frame exceeds {MAX_FRAME_BYTES} bytes")
    if len(wire) < 2 or wire[0] not in (STANDARD_START, EXTENDED_START):
        raise ProtocolError("CSAFE: frame does not begin with F0 or F1")
    if wire[-1] != STOP_FLAG:
        raise ProtocolError("CSAFE: frame does not end with F2")
    body = unstuff(wire[1:-1])
    destination = source = None
    if wire[0] == EXTENDED_START:
        if len(body) < 2:
            raise ProtocolError("CSAFE: extended frame too short for its addresses")
        destination, source, body = body[0], body[1], body[2:]
    if len(body) < 2:
        raise ProtocolError("CSAFE: frame has no contents")
    contents, received = body[:-1], body[-1]
    if checksum(contents) != received:
        raise ProtocolError(
            f"CSAFE: checksum {received:02X} does not match contents ({checksum(contents):02X})"
        )
    return Frame(contents, destination, source)


class FrameDecoder:
    """A byte stream in, frames (or the errors of broken ones) out. Never raises."""

    def __init__(self) -> None:
        self._frame: bytearray | None = None
        self.discarded = 0  # bytes that arrived outside any frame

    def feed(self, data: bytes) -> list[Frame | ProtocolError]:
        out: list[Frame | ProtocolError] = []
        for byte in data:
            if byte in (STANDARD_START, EXTENDED_START):
                if self._frame is not None:
                    out.append(ProtocolError("CSAFE: frame cut short by a new start flag"))
                self._frame = bytearray((byte,))
                continue
            if self._frame is None:
                self.discarded += 1
                continue
            self._frame.append(byte)
            if byte == STOP_FLAG:
                wire, self._frame = bytes(self._frame), None
                try:
                    out.append(decode_frame(wire))
                except ProtocolError as err:
                    out.append(err)
            elif len(self._frame) >= MAX_FRAME_BYTES:
                self._frame = None
                out.append(ProtocolError(f"CSAFE: no stop flag within {MAX_FRAME_BYTES} bytes"))
        return out


# -- responses --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    state: MachineState
    previous: PreviousFrame
    toggle: bool

    @classmethod
    def from_byte(cls, byte: int) -> Status:
        try:
            state = MachineState(byte & 0x0F)
        except ValueError:
            raise ProtocolError(f"CSAFE: status byte {byte:02X} names no machine state") from None
        return cls(state, PreviousFrame((byte >> 4) & 0x03), bool(byte & 0x80))


@dataclass(frozen=True)
class Reply:
    ident: int
    data: bytes

    @property
    def name(self) -> str:
        return _name(self.ident)


@dataclass(frozen=True)
class Response:
    status: Status
    replies: tuple[Reply, ...]

    def reply(self, ident: int) -> Reply | None:
        return next((r for r in self.replies if r.ident == ident), None)

    def answered(self, commands: list[Command] | tuple[Command, ...]) -> int:
        """How many of ``commands``, in order, this response answers."""
        count = 0
        for command, reply in zip(commands, self.replies, strict=False):
            if reply.ident != command.ident:
                break
            count += 1
        return count


def parse_response(contents: bytes) -> Response:
    if not contents:
        raise ProtocolError("CSAFE: empty response")
    status = Status.from_byte(contents[0])
    replies: list[Reply] = []
    at = 1
    while at < len(contents):
        if at + 1 >= len(contents):
            raise ProtocolError(f"CSAFE: reply {_name(contents[at])} has no length byte")
        ident, length = contents[at], contents[at + 1]
        data = contents[at + 2 : at + 2 + length]
        if len(data) < length:
            raise ProtocolError(
                f"CSAFE: reply {_name(ident)} claims {length} bytes but {len(data)} follow"
            )
        replies.append(Reply(ident, data))
        at += 2 + length
    return Response(status, tuple(replies))


def _sized(reply: Reply, size: int) -> bytes:
    if len(reply.data) != size:
        raise ProtocolError(f"CSAFE: {reply.name} carries {len(reply.data)} bytes, not {size}")
    return reply.data


def _measured(reply: Reply, units: dict[int, WireUnit], what: str) -> Quantity:
    data = _sized(reply, 3)
    unit = units.get(data[2])
    if unit is None:
        raise ProtocolError(f"CSAFE: {reply.name} unit {data[2]:02X} is not a {what} unit")
    return unit.quantity(int.from_bytes(data[:2], "little"))


def read_speed(reply: Reply) -> Quantity:
    return _measured(reply, SPEED_UNITS, "speed")


def read_grade(reply: Reply) -> Quantity:
    return _measured(reply, GRADE_UNITS, "grade")


def read_distance_m(reply: Reply) -> float:
    data = _sized(reply, 3)
    per_count = DISTANCE_UNITS.get(data[2])
    if per_count is None:
        raise ProtocolError(f"CSAFE: {reply.name} unit {data[2]:02X} is not a distance unit")
    return float(int.from_bytes(data[:2], "little") * per_count)


def read_elapsed_s(reply: Reply) -> float:
    hours, minutes, seconds = _sized(reply, 3)
    if minutes > 59 or seconds > 59:
        raise ProtocolError(f"CSAFE: {reply.name} {hours}:{minutes}:{seconds} is not a time")
    return float(hours * 3600 + minutes * 60 + seconds)


@dataclass(frozen=True)
class Reading:
    """What one answer to ``GetStatus GetSpeed GetGrade GetHorizontal GetTWork`` says."""

    state: MachineState
    speed: Quantity
    grade: Quantity
    grade_step: Increment  # what one count of the grade the console reports is worth
    distance_m: float  # the console's counter, as it stands
    elapsed_s: float


def read_status(response: Response) -> Reading:
    """Read the status frame's answer; ``80 01 <status>`` for GetStatus is allowed, not needed."""
    found = {}
    for ident in (CommandId.GET_SPEED, CommandId.GET_GRADE, CommandId.GET_HORIZONTAL):
        reply = response.reply(ident)
        if reply is None:
            raise ProtocolError(f"CSAFE: the answer carries no {_name(ident)}")
        found[ident] = reply
    work = response.reply(CommandId.GET_TWORK)
    if work is None:
        raise ProtocolError("CSAFE: the answer carries no GET_TWORK")
    grade = found[CommandId.GET_GRADE]
    unit = GRADE_UNITS.get(_sized(grade, 3)[2])
    return Reading(
        state=response.status.state,
        speed=read_speed(found[CommandId.GET_SPEED]),
        grade=read_grade(grade),
        grade_step=unit.resolution if unit else Increment.of("0.1", Unit.PERCENT),
        distance_m=read_distance_m(found[CommandId.GET_HORIZONTAL]),
        elapsed_s=read_elapsed_s(work),
    )
