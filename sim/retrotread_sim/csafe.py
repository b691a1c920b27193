"""The treadmill's side of CSAFE: the simulator's own frame reader and a family of consoles.

This module is written independently of retrotread's CSAFE client (it must never share code
with it), so that a codec mistake on either side shows up as a failed exchange, the way a real
console would show it.

Framing, as the console sees it: a standard frame is ``F1 <contents> <checksum> F2``, an
extended one ``F0 <dst> <src> <contents> <checksum> F2``; the checksum is the XOR of the
contents; any byte F0–F3 between start and stop travels as ``F3 <byte - F0>``; a frame is at
most 96 bytes on the wire. A frame with a wrong checksum, bad stuffing or a truncated command
gets no answer at all. ``F1 00 F2`` (no contents, checksum 0) is the CSAFE *empty frame*: it is
answered with the status byte and changes nothing.

An answer is the status byte, then ``<id> <len> <data>`` **only for the Get commands** of the
frame: a Set or Go command is answered by the status byte alone (no real console echoes it).
Status byte: bits 0–3 the CSAFE state, bits 4–5 how a frame went (0 ok, 1 rejected, 2 bad,
3 not ready), bit 7 the frame toggle.

The consoles (``PERSONALITIES``), each written from a public source, never from retrotread:

``matrix``
    The Johnson Health Tech / Matrix console firmware (``Modules/Csafe_Lib/C_safe.c`` in the
    public repository menggaoling/Cyclops): ``GetStatus`` adds nothing to the status byte;
    the command/state table ``_SupportCheck`` accepts SetSpeed/SetGrade in Ready, Idle and
    HaveID only (not InUse), GoIdle in Ready/Idle/HaveID/Finished, GoHaveID in Idle, GoInUse in
    Idle/HaveID/InUse/Paused, GoFinished in InUse/Paused, GoReady as GoIdle; GoIdle and GoReady
    call ``CSAFE_Reset()``, which clears the preset speed and grade and the workout counters;
    the frame toggle ``FC`` flips for every frame with a good checksum and flips back when a
    command is not allowed in the current state (so it flips only for frames carried out); the
    refusal is reported later, as "previous frame rejected" (``CSAFE_Error_Answer``, 0x10);
    ``GetGrade`` answers in whole percent (unit 0x4A). Where the firmware sends no answer at all
    to a refused frame, this console answers it with the status byte (toggle unchanged) and
    reports the refusal in the next answer, as the CSAFE "previous frame" bits say.
``concept2``
    The Concept2 PM CSAFE Communication Definition (rev 0.27): ``GetStatus`` is answered
    ``80 01 <status>`` ("Byte 0: Status"), every other public Set/Go command by the status byte
    alone ("no specific response data, but the status byte will be returned"); the frame toggle
    "toggles 0/1 on alternate frames" (every frame received intact); InUse may also be entered
    from Ready. A refused frame carries its own "rejected" bits (the reading of the
    OpenRowingCommunity csafe-fitness client, which takes a refusal from the answer to the
    frame itself). This console takes SetSpeed and SetGrade in InUse too.

Both reset presets at GoIdle/GoReady ("go to Idle State, reset variables to Idle state", the
CSAFE command list as quoted by csafe-fitness). The state diagram, as modelled::

    Ready --GoIdle--> Idle --GoHaveID--> HaveID --GoInUse--> InUse --GoFinished--> Finished
    (Idle --GoInUse--> InUse; Finished --GoIdle/GoReady--> Idle/Ready; Reset from anywhere)

GoInUse starts the belt and GoFinished stops it. A read-only console (one in Manual mode,
driven by a person) refuses every Set and Go command and answers Get commands.
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
    if body == b"\x00":  # the empty frame: no contents, checksum 0
        return Frame(b"", destination, source)
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
class Personality:
    """How one family of consoles answers (see the module doc for the sources)."""

    name: str
    summary: str
    #: GetStatus answered ``80 01 <status>`` (Concept2 PM) rather than by the status byte alone
    status_reply: bool
    #: SetSpeed/SetGrade accepted in InUse and Paused (else only before the workout starts)
    sets_in_workout: bool
    #: a refused frame's "rejected" bits come in its own answer (else in the next answer)
    refusal_in_own_answer: bool
    #: the frame toggle flips for every intact frame (else only for frames carried out)
    toggle_every_frame: bool
    #: InUse may be entered straight from Ready
    in_use_from_ready: bool
    #: the unit GetGrade answers in (None: the console's configured grade unit)
    grade_unit: int | None = None


MATRIX = Personality(
    name="matrix",
    summary="Matrix-style console (JHT firmware): status-only answers, sets only before InUse",
    status_reply=False,
    sets_in_workout=False,
    refusal_in_own_answer=False,
    toggle_every_frame=False,
    in_use_from_ready=False,
    grade_unit=0x4A,
)
CONCEPT2 = Personality(
    name="concept2",
    summary="Concept2-style console (PM CSAFE definition): GetStatus answered 80 01 <status>",
    status_reply=True,
    sets_in_workout=True,
    refusal_in_own_answer=True,
    toggle_every_frame=True,
    in_use_from_ready=True,
)
PERSONALITIES = {p.name: p for p in (MATRIX, CONCEPT2)}
DEFAULT_PERSONALITY = "concept2"


@dataclass(frozen=True)
class CsafeOptions:
    speed_unit: int = 0x11  # how the console reports speed
    grade_unit: int = 0x4C
    distance_unit: int = 0x24
    read_only: bool = False
    address: int = 0x01  # extended frames must be addressed here (or to FF, broadcast)
    personality: Personality = CONCEPT2
    #: GetHorizontal is a running total that began at this many metres and never resets
    #: (the console of retrotread issue 14, finding 3); None: a per-workout counter
    odometer_m: float | None = None


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


_ALL = frozenset(CsafeState)
_BEFORE_WORKOUT = frozenset((CsafeState.READY, CsafeState.IDLE, CsafeState.HAVE_ID))
_WORKOUT = frozenset((CsafeState.IN_USE, CsafeState.PAUSED))
_AFTER = frozenset((*_BEFORE_WORKOUT, CsafeState.FINISHED))


class CsafeResponder:
    """Answers CSAFE frames for one :class:`SimTreadmill`, the way one personality does."""

    protocol = "csafe"

    def __init__(self, machine: SimTreadmill, options: CsafeOptions | None = None) -> None:
        self.machine = machine
        self.options = options or CsafeOptions()
        self.personality = self.options.personality
        self.state = CsafeState.IDLE if self.options.read_only else CsafeState.READY
        self.previous = FrameOutcome.OK
        self.toggle = 0
        self.splitter = FrameSplitter()
        self._counters_from = (0.0, 0.0)  # distance and work time when the counters were reset
        sets = _BEFORE_WORKOUT | (_WORKOUT if self.personality.sets_in_workout else frozenset())
        in_use = frozenset((CsafeState.IDLE, CsafeState.HAVE_ID, *_WORKOUT))
        if self.personality.in_use_from_ready:
            in_use |= {CsafeState.READY}
        # command -> (states it is carried out in, handler); the Matrix table _SupportCheck
        self._commands: dict[int, tuple[frozenset[CsafeState], Callable[[bytes], bytes]]] = {
            Cmd.GET_STATUS: (_ALL, self._get_status),
            Cmd.RESET: (_ALL, self._reset),
            Cmd.GO_IDLE: (_AFTER, self._go_idle),
            Cmd.GO_HAVE_ID: (frozenset((CsafeState.IDLE,)), self._go_have_id),
            Cmd.GO_IN_USE: (in_use, self._go_in_use),
            Cmd.GO_FINISHED: (_WORKOUT, self._go_finished),
            Cmd.GO_READY: (_AFTER, self._go_ready),
            Cmd.SET_SPEED: (sets, self._set_speed),
            Cmd.SET_GRADE: (sets, self._set_grade),
            Cmd.GET_SPEED: (_ALL, self._get_speed),
            Cmd.GET_GRADE: (_ALL, self._get_grade),
            Cmd.GET_HORIZONTAL: (_ALL, self._get_horizontal),
            Cmd.GET_TWORK: (_ALL, self._get_twork),
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
        if not frame.contents:  # the empty frame: the status as it stands, nothing changed
            return self._answer(frame, arrival.wire, self.previous, [], "empty frame", ())
        try:
            commands = split_commands(frame.contents)
        except FrameError as err:
            self.previous = FrameOutcome.BAD
            return Handled(arrival.wire, None, f"bad frame: {err}")
        replies: list[tuple[int, bytes | None]] = []
        names: list[str] = []
        outcome, notes = FrameOutcome.OK, []
        for ident, data in commands:
            name = command_name(ident)
            names.append(name)
            try:
                reply = self._run(ident, data)
            except _Refused as refusal:
                # Like the Matrix firmware, the other commands of the frame still run.
                outcome = refusal.outcome
                notes.append(f"{name} refused: {refusal}")
                continue
            if ident == Cmd.GET_STATUS:
                if self.personality.status_reply:
                    replies.append((ident, None))  # the status byte, once the frame has run
            elif ident >= 0xA0:  # Get commands answer with data; Set and Go commands do not
                replies.append((ident, reply))
        if outcome is FrameOutcome.OK or self.personality.toggle_every_frame:
            self.toggle ^= 1
        if self.personality.refusal_in_own_answer:
            reported = outcome if outcome is not FrameOutcome.OK else self._bad_before()
        else:
            reported = self.previous
        self.previous = outcome
        note = "; ".join(notes) or "ok"
        return self._answer(frame, arrival.wire, reported, replies, note, tuple(names))

    def _bad_before(self) -> FrameOutcome:
        return FrameOutcome.BAD if self.previous is FrameOutcome.BAD else FrameOutcome.OK

    def _answer(
        self,
        frame: Frame,
        wire: bytes,
        reported: FrameOutcome,
        replies: list[tuple[int, bytes | None]],
        note: str,
        names: tuple[str, ...],
    ) -> Handled:
        status = (self.toggle << 7) | (reported << 4) | self._reported_state()
        contents = bytearray((status,))
        for ident, data in replies:
            data = bytes((status,)) if data is None else data
            contents += bytes((ident, len(data))) + data
        if frame.destination is not None:
            reply = build_frame(bytes(contents), frame.source, self.options.address)
        else:
            reply = build_frame(bytes(contents))
        return Handled(wire, reply, note, names)

    def _run(self, ident: int, data: bytes) -> bytes:
        entry = self._commands.get(ident)
        if entry is None:
            raise _Refused(FrameOutcome.REJECTED, f"unknown command {ident:02X}")
        allowed, handler = entry
        state = self._reported_state()
        if state not in allowed or (self.options.read_only and ident < 0xA0 and ident != 0x80):
            why = "the console is in manual mode" if state in allowed else f"in state {state.name}"
            raise _Refused(FrameOutcome.REJECTED, f"not carried out {why}")
        return handler(data)

    def snapshot(self) -> dict[str, object]:
        return {
            "csafe_state": self._reported_state().name.lower().replace("_", "-"),
            "personality": self.personality.name,
        }

    # -- state --------------------------------------------------------------------------------

    def _reported_state(self) -> CsafeState:
        if self.machine.state is BeltState.SAFETY_KEY:
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

    def _machine_call(self, action: Callable[[], None]) -> None:
        try:
            action()
        except SimRefused as refusal:
            raise _Refused(FrameOutcome.REJECTED, str(refusal)) from refusal

    def _reset_counters(self) -> None:
        snap = self.machine.snapshot()
        self._counters_from = (snap.distance_m, snap.elapsed_s)

    # -- commands -----------------------------------------------------------------------------

    def _get_status(self, _: bytes) -> bytes:
        return b""  # the status byte itself (see handle)

    def _reset(self, _: bytes) -> bytes:
        self.machine.reset()
        self.machine.clear_presets()
        self._reset_counters()
        self.state = CsafeState.READY
        self.toggle = 0  # "reset Frame Toggle and Status of Previous Frame flag to zero"
        self.previous = FrameOutcome.OK
        return b""

    def _go_idle(self, _: bytes) -> bytes:
        self.machine.clear_presets()
        self._reset_counters()
        self.state = CsafeState.IDLE
        return b""

    def _go_have_id(self, _: bytes) -> bytes:
        self.state = CsafeState.HAVE_ID
        return b""

    def _go_in_use(self, _: bytes) -> bytes:
        self._machine_call(self.machine.start)
        self.state = CsafeState.IN_USE
        return b""

    def _go_finished(self, _: bytes) -> bytes:
        self.machine.stop()
        self.state = CsafeState.FINISHED
        return b""

    def _go_ready(self, _: bytes) -> bytes:
        self.machine.clear_presets()
        self._reset_counters()
        self.state = CsafeState.READY
        return b""

    @staticmethod
    def _amount(data: bytes, units: dict[int, float], what: str) -> float:
        if len(data) != 3:
            raise _Refused(FrameOutcome.REJECTED, f"{what} takes 3 bytes, got {len(data)}")
        count, unit = data[0] | data[1] << 8, data[2]
        if unit not in units:
            raise _Refused(FrameOutcome.REJECTED, f"{unit:02X} is not a {what} unit")
        return count * units[unit]

    def _set_speed(self, data: bytes) -> bytes:
        kmh = self._amount(data, KMH_PER_SPEED_COUNT, "speed")
        self._machine_call(lambda: self.machine.set_target_speed(kmh))
        return b""

    def _set_grade(self, data: bytes) -> bytes:
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
        unit = self.personality.grade_unit or self.options.grade_unit
        pct = self.machine.snapshot().incline_pct
        return self._counted(pct, PERCENT_PER_GRADE_COUNT[unit], unit)

    def _get_horizontal(self, _: bytes) -> bytes:
        unit = self.options.distance_unit
        metres = self.machine.snapshot().distance_m
        if self.options.odometer_m is not None:
            metres += self.options.odometer_m
        else:
            metres -= self._counters_from[0]
        return self._counted(metres, METRES_PER_DISTANCE_COUNT[unit], unit)

    def _get_twork(self, _: bytes) -> bytes:
        total = int(self.machine.snapshot().elapsed_s - self._counters_from[1])
        hours, rest = divmod(max(total, 0), 3600)
        return bytes((min(hours, 255), rest // 60, rest % 60))
