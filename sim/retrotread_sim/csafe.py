"""The treadmill's side of CSAFE: the simulator's own frame reader and command responder.

This module is written independently of retrotread's CSAFE client (it must never share code
with it), so that a codec mistake on either side shows up as a failed exchange, the way a real
console would show it.

Framing, as the console sees it: a standard frame is ``F1 <contents> <checksum> F2``, an
extended one ``F0 <dst> <src> <contents> <checksum> F2``; the checksum is the XOR of the
contents; any byte F0–F3 between start and stop travels as ``F3 <byte - F0>``; a frame is at
most 96 bytes on the wire. A frame with a wrong checksum, bad stuffing or a truncated command
gets no answer at all, and the next answer reports it as "previous frame bad".

The answer to a good frame is a status byte followed by ``<id> <len> <data>`` for each command
that was carried out. Commands run in order; the first one the machine refuses ends the frame,
and its answer (and those after it) is missing. Status byte: bits 0–3 the CSAFE state, bits 4–5
how the *previous* frame went (0 ok, 1 rejected, 2 bad, 3 not ready), bit 7 a toggle that flips
with every good frame received.

The CSAFE state follows the console's state diagram as this simulator models it::

    Ready --GoIdle--> Idle --GoHaveID--> HaveID --GoInUse--> InUse --GoFinished--> Finished
    (Idle or Paused --GoInUse--> InUse; Finished/Idle --GoReady--> Ready; Reset from anywhere)

GoInUse starts the belt and GoFinished / GoIdle stop it. Set commands are accepted in every
state a controller may prepare a workout in; a read-only machine (a console in manual mode)
refuses every Go and Set command and only answers Get commands, while a person drives the belt.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from retrotread_sim.belt import BeltState, SimRefused, SimTreadmill, StatusEvent, StatusKind

EXTENDED_START = 0xF0
STANDARD_START = 0xF1
STOP = 0xF2
ESCAPE = 0xF3
LONGEST_FRAME = 96

# Unit codes (CSAFE unit table) and what one count is worth.
KMH_PER_SPEED_COUNT = {
    0x10: 1.609344,  # mph
    0x11: 0.1609344,  # 0.1 mph
    0x12: 0.01609344,  # 0.01 mph
    0x30: 1.0,  # km/h
    0x31: 0.1,  # 0.1 km/h
    0x32: 0.01,  # 0.01 km/h
}
PERCENT_PER_GRADE_COUNT = {0x4A: 1.0, 0x4B: 0.01, 0x4C: 0.1}
METRES_PER_DISTANCE_COUNT = {
    0x01: 1609.344,  # mile
    0x02: 160.9344,  # 0.1 mile
    0x03: 16.09344,  # 0.01 mile
    0x21: 1000.0,  # km
    0x22: 100.0,  # 0.1 km
    0x23: 10.0,  # 0.01 km
    0x24: 1.0,  # metre
}

SPEED_UNIT_NAMES = {
    "mph": 0x10,
    "0.1mph": 0x11,
    "0.01mph": 0x12,
    "kmh": 0x30,
    "0.1kmh": 0x31,
    "0.01kmh": 0x32,
}


class CsafeState(enum.IntEnum):
    ERROR = 0
    READY = 1
    IDLE = 2
    HAVE_ID = 3
    IN_USE = 5
    PAUSED = 6
    FINISHED = 7
    MANUAL = 8
    OFFLINE = 9


class FrameOutcome(enum.IntEnum):
    OK = 0
    REJECTED = 1
    BAD = 2
    NOT_READY = 3


class Cmd(enum.IntEnum):
    SET_SPEED = 0x25
    SET_GRADE = 0x28
    GET_STATUS = 0x80
    RESET = 0x81
    GO_IDLE = 0x82
    GO_HAVE_ID = 0x83
    GO_IN_USE = 0x85
    GO_FINISHED = 0x86
    GO_READY = 0x87
    GET_TWORK = 0xA0
    GET_HORIZONTAL = 0xA1
    GET_SPEED = 0xA5
    GET_GRADE = 0xA8


class FrameError(Exception):
    """Bytes between a start and a stop flag that are not a valid frame."""


@dataclass(frozen=True)
class Frame:
    contents: bytes
    destination: int | None = None  # extended frames only
    source: int | None = None


def xor_of(data: bytes) -> int:
    result = 0
    for value in data:
        result ^= value
    return result


def escape(data: bytes) -> bytes:
    out = bytearray()
    for value in data:
        if EXTENDED_START <= value <= ESCAPE:
            out += bytes((ESCAPE, value - EXTENDED_START))
        else:
            out.append(value)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    pending_escape = False
    for value in data:
        if pending_escape:
            if value > 0x03:
                raise FrameError(f"escape F3 followed by {value:02X} (must be 00-03)")
            out.append(EXTENDED_START + value)
            pending_escape = False
        elif value == ESCAPE:
            pending_escape = True
        elif EXTENDED_START <= value <= STOP:
            raise FrameError(f"unescaped flag {value:02X} inside a frame")
        else:
            out.append(value)
    if pending_escape:
        raise FrameError("frame ends in the middle of an escape")
    return bytes(out)


def parse_frame(wire: bytes) -> Frame:
    """A complete frame as it came off the wire, start flag to stop flag."""
    if len(wire) > LONGEST_FRAME:
        raise FrameError(f"{len(wire)} bytes is longer than a frame may be ({LONGEST_FRAME})")
    if len(wire) < 2 or wire[0] not in (EXTENDED_START, STANDARD_START) or wire[-1] != STOP:
        raise FrameError("not delimited by a start flag and F2")
    body = unescape(wire[1:-1])
    destination = source = None
    if wire[0] == EXTENDED_START:
        if len(body) < 2:
            raise FrameError("extended frame without addresses")
        destination, source, body = body[0], body[1], body[2:]
    if len(body) < 2:
        raise FrameError("frame without contents")
    contents, check = body[:-1], body[-1]
    if xor_of(contents) != check:
        raise FrameError(f"checksum {check:02X}, contents give {xor_of(contents):02X}")
    return Frame(contents, destination, source)


def build_frame(
    contents: bytes, destination: int | None = None, source: int | None = None
) -> bytes:
    if destination is None or source is None:
        return bytes((STANDARD_START,)) + escape(contents + bytes((xor_of(contents),))) + b"\xf2"
    body = bytes((destination, source)) + contents + bytes((xor_of(contents),))
    return bytes((EXTENDED_START,)) + escape(body) + b"\xf2"


@dataclass(frozen=True)
class Arrival:
    """One delimited frame from the wire: decoded, or the reason it could not be."""

    wire: bytes
    frame: Frame | None
    error: str = ""


class FrameSplitter:
    """Cuts a byte stream into frames. Never raises: bad frames come out with their error.

    Bytes outside a frame are skipped; a start flag inside a frame abandons the partial one
    (reported as bad) and begins anew, so a good frame after garbage is always found.
    """

    def __init__(self) -> None:
        self._partial: bytearray | None = None
        self.skipped = 0  # bytes seen outside any frame

    def feed(self, data: bytes) -> list[Arrival]:
        arrivals: list[Arrival] = []
        for value in data:
            if value in (EXTENDED_START, STANDARD_START):
                if self._partial is not None:
                    arrivals.append(Arrival(bytes(self._partial), None, "frame interrupted"))
                self._partial = bytearray((value,))
            elif self._partial is None:
                self.skipped += 1
            else:
                self._partial.append(value)
                if value == STOP:
                    wire = bytes(self._partial)
                    self._partial = None
                    try:
                        arrivals.append(Arrival(wire, parse_frame(wire)))
                    except FrameError as err:
                        arrivals.append(Arrival(wire, None, str(err)))
                elif len(self._partial) > LONGEST_FRAME:
                    arrivals.append(Arrival(bytes(self._partial), None, "frame too long"))
                    self._partial = None
        return arrivals


def command_name(ident: int) -> str:
    try:
        return Cmd(ident).name
    except ValueError:
        return f"{ident:02X}"


def split_commands(contents: bytes) -> list[tuple[int, bytes]]:
    """``contents`` as (command id, data) pairs: short ids >= 0x80, long ``<id> <len> <data>``."""
    commands: list[tuple[int, bytes]] = []
    at = 0
    while at < len(contents):
        ident = contents[at]
        if ident >= 0x80:
            commands.append((ident, b""))
            at += 1
            continue
        if at + 1 >= len(contents):
            raise FrameError(f"long command {ident:02X} without a length byte")
        length = contents[at + 1]
        data = contents[at + 2 : at + 2 + length]
        if len(data) != length:
            raise FrameError(f"command {ident:02X} announces {length} bytes, {len(data)} follow")
        commands.append((ident, data))
        at += 2 + length
    return commands


@dataclass(frozen=True)
class CsafeOptions:
    speed_unit: int = 0x11  # how the console reports speed
    grade_unit: int = 0x4C
    distance_unit: int = 0x24
    read_only: bool = False
    address: int = 0x01  # extended frames must be addressed here (or to FF, broadcast)


class _Refused(Exception):
    def __init__(self, outcome: FrameOutcome, why: str) -> None:
        super().__init__(why)
        self.outcome = outcome


@dataclass(frozen=True)
class Handled:
    """What one frame did: the bytes received, the answer sent (if any), and a note."""

    request: bytes
    reply: bytes | None
    note: str
    commands: tuple[str, ...] = field(default_factory=tuple)


class CsafeResponder:
    """Answers CSAFE frames for one :class:`SimTreadmill`."""

    protocol = "csafe"

    def __init__(self, machine: SimTreadmill, options: CsafeOptions | None = None) -> None:
        self.machine = machine
        self.options = options or CsafeOptions()
        self.state = CsafeState.IDLE if self.options.read_only else CsafeState.READY
        self.previous = FrameOutcome.OK
        self.toggle = 0
        self.splitter = FrameSplitter()
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            Cmd.GET_STATUS: lambda _: b"",
            Cmd.RESET: self._reset,
            Cmd.GO_IDLE: self._go_idle,
            Cmd.GO_HAVE_ID: self._go_have_id,
            Cmd.GO_IN_USE: self._go_in_use,
            Cmd.GO_FINISHED: self._go_finished,
            Cmd.GO_READY: self._go_ready,
            Cmd.SET_SPEED: self._set_speed,
            Cmd.SET_GRADE: self._set_grade,
            Cmd.GET_SPEED: self._get_speed,
            Cmd.GET_GRADE: self._get_grade,
            Cmd.GET_HORIZONTAL: self._get_horizontal,
            Cmd.GET_TWORK: self._get_twork,
        }
        machine.subscribe(self._on_console)

    # -- the wire -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Handled]:
        return [self.handle(arrival) for arrival in self.splitter.feed(data)]

    def handle(self, arrival: Arrival) -> Handled:
        frame = arrival.frame
        if frame is None:
            self.previous = FrameOutcome.BAD
            return Handled(arrival.wire, None, f"bad frame: {arrival.error}")
        if frame.destination is not None and frame.destination not in (self.options.address, 0xFF):
            return Handled(arrival.wire, None, f"addressed to {frame.destination:02X}, not us")
        try:
            commands = split_commands(frame.contents)
        except FrameError as err:
            self.previous = FrameOutcome.BAD
            return Handled(arrival.wire, None, f"bad frame: {err}")
        self.toggle ^= 1
        answers = bytearray()
        names: list[str] = []
        outcome, note = FrameOutcome.OK, "ok"
        for ident, data in commands:
            name = command_name(ident)
            names.append(name)
            try:
                handler = self._handlers.get(ident)
                if handler is None:
                    raise _Refused(FrameOutcome.REJECTED, f"unknown command {ident:02X}")
                answer = handler(data)
            except _Refused as refusal:
                outcome, note = refusal.outcome, f"{name} refused: {refusal}"
                break
            answers += bytes((ident, len(answer))) + answer
        status = (self.toggle << 7) | (self.previous << 4) | self._reported_state()
        self.previous = outcome
        reply_contents = bytes((status,)) + bytes(answers)
        if frame.destination is not None:
            reply = build_frame(reply_contents, frame.source, self.options.address)
        else:
            reply = build_frame(reply_contents)
        return Handled(arrival.wire, reply, note, tuple(names))

    def snapshot(self) -> dict[str, object]:
        return {"csafe_state": self._reported_state().name.lower().replace("_", "-")}

    # -- state --------------------------------------------------------------------------------

    def _reported_state(self) -> CsafeState:
        machine_state = self.machine.state
        if machine_state is BeltState.SAFETY_KEY:
            return CsafeState.ERROR
        if self.state is CsafeState.ERROR:  # the key is back in
            self.state = CsafeState.IDLE
        return self.state

    def _on_console(self, event: StatusEvent) -> None:
        """A person at the machine changed its state."""
        changes = {
            StatusKind.STOPPED_BY_USER: CsafeState.FINISHED,
            StatusKind.PAUSED_BY_USER: CsafeState.PAUSED,
            StatusKind.STARTED_BY_USER: CsafeState.IN_USE,
            StatusKind.STOPPED_BY_SAFETY_KEY: CsafeState.ERROR,
            StatusKind.RESET: CsafeState.READY,
        }
        if event.kind in changes:
            self.state = changes[event.kind]

    def _require(self, allowed: tuple[CsafeState, ...], command: str) -> None:
        if self.options.read_only:
            raise _Refused(FrameOutcome.REJECTED, "the console is in manual mode (read-only)")
        state = self._reported_state()
        if state not in allowed:
            raise _Refused(FrameOutcome.NOT_READY, f"{command} not allowed in state {state.name}")

    def _machine_call(self, action: Callable[[], None]) -> None:
        try:
            action()
        except SimRefused as refusal:
            raise _Refused(FrameOutcome.REJECTED, str(refusal)) from refusal

    # -- commands -----------------------------------------------------------------------------

    def _reset(self, _: bytes) -> bytes:
        self._require(tuple(CsafeState), "Reset")
        self.machine.reset()
        self.state = CsafeState.READY
        return b""

    def _go_idle(self, _: bytes) -> bytes:
        every_but_error = tuple(s for s in CsafeState if s is not CsafeState.ERROR)
        self._require(every_but_error, "GoIdle")
        if self.state in (CsafeState.IN_USE, CsafeState.PAUSED):
            self.machine.stop()
        self.state = CsafeState.IDLE
        return b""

    def _go_have_id(self, _: bytes) -> bytes:
        self._require((CsafeState.IDLE, CsafeState.HAVE_ID), "GoHaveID")
        self.state = CsafeState.HAVE_ID
        return b""

    def _go_in_use(self, _: bytes) -> bytes:
        allowed = (CsafeState.IDLE, CsafeState.HAVE_ID, CsafeState.PAUSED, CsafeState.IN_USE)
        self._require(allowed, "GoInUse")
        self._machine_call(self.machine.start)
        self.state = CsafeState.IN_USE
        return b""

    def _go_finished(self, _: bytes) -> bytes:
        allowed = (CsafeState.IN_USE, CsafeState.PAUSED, CsafeState.FINISHED)
        self._require(allowed, "GoFinished")
        self.machine.stop()
        self.state = CsafeState.FINISHED
        return b""

    def _go_ready(self, _: bytes) -> bytes:
        allowed = (CsafeState.IDLE, CsafeState.FINISHED, CsafeState.READY)
        self._require(allowed, "GoReady")
        self.state = CsafeState.READY
        return b""

    _PREPARING = (
        CsafeState.READY,
        CsafeState.IDLE,
        CsafeState.HAVE_ID,
        CsafeState.IN_USE,
        CsafeState.PAUSED,
        CsafeState.FINISHED,
    )

    @staticmethod
    def _amount(data: bytes, units: dict[int, float], what: str) -> float:
        if len(data) != 3:
            raise _Refused(FrameOutcome.REJECTED, f"{what} takes 3 bytes, got {len(data)}")
        count, unit = data[0] | data[1] << 8, data[2]
        if unit not in units:
            raise _Refused(FrameOutcome.REJECTED, f"{unit:02X} is not a {what} unit")
        return count * units[unit]

    def _set_speed(self, data: bytes) -> bytes:
        self._require(self._PREPARING, "SetSpeed")
        kmh = self._amount(data, KMH_PER_SPEED_COUNT, "speed")
        self._machine_call(lambda: self.machine.set_target_speed(kmh))
        return b""

    def _set_grade(self, data: bytes) -> bytes:
        self._require(self._PREPARING, "SetGrade")
        pct = self._amount(data, PERCENT_PER_GRADE_COUNT, "grade")
        self._machine_call(lambda: self.machine.set_target_incline(pct))
        return b""

    @staticmethod
    def _counted(amount: float, per_count: float, unit: int) -> bytes:
        count = min(max(round(amount / per_count), 0), 0xFFFF)
        return bytes((count & 0xFF, count >> 8, unit))

    def _get_speed(self, _: bytes) -> bytes:
        unit = self.options.speed_unit
        return self._counted(self.machine.snapshot().speed_kmh, KMH_PER_SPEED_COUNT[unit], unit)

    def _get_grade(self, _: bytes) -> bytes:
        unit = self.options.grade_unit
        pct = self.machine.snapshot().incline_pct
        return self._counted(pct, PERCENT_PER_GRADE_COUNT[unit], unit)

    def _get_horizontal(self, _: bytes) -> bytes:
        unit = self.options.distance_unit
        metres = self.machine.snapshot().distance_m
        return self._counted(metres, METRES_PER_DISTANCE_COUNT[unit], unit)

    def _get_twork(self, _: bytes) -> bytes:
        total = int(self.machine.snapshot().elapsed_s)
        hours, rest = divmod(total, 3600)
        return bytes((min(hours, 255), rest // 60, rest % 60))
