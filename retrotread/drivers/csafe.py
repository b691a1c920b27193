"""CSAFE treadmills (Life Fitness, Precor, Cybex, Matrix club consoles) over RS-232.

Reached through any pyserial URL with ``?protocol=csafe`` (see
:mod:`retrotread.drivers.serial_link`). The driver speaks CSAFE the way consoles answer it
(the readings we took, and their sources, are in ``docs/csafe.md``):

* A Set or Go command is answered by the status byte alone; only Get commands add data, and
  ``GetStatus`` may add ``80 01 <status>`` or nothing. No answer is matched by its content:
  one frame is in flight at a time and the answer that comes is its answer.
* Whether the console carried a frame out is read from the status byte: the frame toggle
  (bit 7) flips for every frame a console takes, so an answer with the same toggle as the one
  before says this frame was not taken (the csafe-fitness client's rule; the Matrix firmware
  restores the toggle for a refused frame); the "previous frame" bits (4–5) say rejected or not
  ready — some consoles in the answer to the refused frame itself, others (the CSAFE "previous
  frame", the Matrix firmware) in the next answer. So every command frame is followed by the
  status frame ``GetStatus GetSpeed GetGrade GetHorizontal GetTWork``, and a command counts as
  carried out only when neither answer says otherwise.
* The state machine decides where a command can go. SetSpeed and SetGrade before a workout go
  in Idle or HaveID (GoIdle first from Ready or Finished), and since GoIdle and GoReady reset
  the presets, every target is sent again after any state change that may have cleared it,
  just before ``GoInUse``. A console that refuses sets during a workout (Matrix) is learned
  from its first refusal: changes during a workout are then refused with
  :attr:`~retrotread.errors.Rejection.NOT_DURING_WORKOUT` and an instruction for the operator,
  and reported as made at the console once the belt gets there.
* Every target is read back (GetSpeed/GetGrade in the status frames): one the machine does not
  reach within the profile's ``confirm.timeout_s`` is reported as
  :attr:`~retrotread.drivers.base.MachineEventKind.TARGET_NOT_REACHED` with the reading.
* Distance and time are the session's, not the console's: counted from the first reading after
  connecting (:class:`~retrotread.drivers.serial_link.Totals`), through any reset of the
  console's own counters.
* What a person does at the console (start, pause, stop, an error state) is reported from the
  state in each status byte.

CSAFE has no pause: :meth:`pause` ends the workout like :meth:`stop`. A stop answered "not
carried out" by a console that is not in a workout is an "already stopped" and succeeds.

A profile with ``quirks.read_only`` is a console that can be read but not driven: nothing but
status frames is sent; every command is refused with
:attr:`~retrotread.errors.Rejection.READ_ONLY` and an instruction for the operator ("set
2.6 mph on the treadmill console"), and when the reading reaches what the operator was asked
to set, the driver reports the change as made at the console.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import ClassVar

from retrotread.clock import Clock
from retrotread.drivers.base import BeltStatus, MachineEvent, MachineEventKind, Telemetry
from retrotread.drivers.serial_link import (
    RETRY_PAUSE_S,
    Fit,
    SerialTreadmill,
    Totals,
    grammar_for,
)
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import (
    CommandRejected,
    DeviceUrlError,
    ProfileError,
    ProtocolError,
    Rejection,
)
from retrotread.profiles import Profile
from retrotread.protocols import csafe
from retrotread.protocols.csafe import Command, MachineState, PreviousFrame, Response
from retrotread.units import Increment, Quantity, Unit, format_number

log = logging.getLogger(__name__)

OUR_ADDRESS = 0x00
POLL_COMMANDS = (
    csafe.GET_STATUS,
    csafe.GET_SPEED,
    csafe.GET_GRADE,
    csafe.GET_HORIZONTAL,
    csafe.GET_TWORK,
)
WORKOUT = frozenset((MachineState.IN_USE, MachineState.PAUSED))
#: states in which presets hold until GoInUse
PRESETS_HOLD = frozenset((MachineState.IDLE, MachineState.HAVE_ID))
#: states whose entry may have cleared the presets (GoIdle, GoReady, Reset, a finished workout)
PRESETS_LOST = frozenset(
    (
        MachineState.ERROR,
        MachineState.READY,
        MachineState.IDLE,
        MachineState.FINISHED,
        MachineState.MANUAL,
        MachineState.OFFLINE,
    )
)
NOT_READY_RETRIES = 2  # a console busy with the previous frame is asked again
_BELT = {MachineState.IN_USE: BeltStatus.RUNNING, MachineState.PAUSED: BeltStatus.PAUSED}
SPEED, INCLINE = "speed", "incline"


def _coarsest_unit(increment: Increment) -> csafe.WireUnit:
    """The coarsest CSAFE speed unit that carries every multiple of ``increment`` exactly."""
    family = [u for u in csafe.SPEED_UNITS.values() if u.resolution.unit is increment.unit]
    for unit in sorted(family, key=lambda u: u.resolution.size, reverse=True):
        if (increment.size / unit.resolution.size).denominator == 1:
            return unit
    return min(family, key=lambda u: u.resolution.size)


def _carries(increment: Increment, unit: csafe.WireUnit) -> bool:
    steps = Quantity(increment.size, increment.unit).to(unit.resolution.unit).value
    return (steps / unit.resolution.size).denominator == 1


def _show(value: Quantity) -> str:
    if value.unit is Unit.PERCENT:
        return f"{format_number(value.value, 1)} %"
    if value.unit is Unit.KMH:
        return f"{format_number(value.value)} km/h"
    return f"{format_number(value.value)} mph"


@dataclass
class _Watch:
    """A target being read back until the machine reaches it, or the deadline passes."""

    target: Quantity
    deadline: float


class CsafeDriver(SerialTreadmill[Response]):
    scheme: ClassVar[str] = "serial"
    url_grammar: ClassVar[str] = grammar_for("serial")
    default_profile: ClassVar[str] = "generic-csafe"
    protocol: ClassVar[str] = "csafe"
    default_baud: ClassVar[int] = 9600

    def __init__(self, url: DeviceUrl, profile: Profile, clock: Clock) -> None:
        super().__init__(url, profile, clock)
        quirks = profile.quirks
        try:
            self.speed_unit = (
                csafe.speed_unit_named(quirks.speed_unit)
                if quirks.speed_unit
                else _coarsest_unit(profile.speed.increment)
            )
            self.grade_unit = csafe.grade_unit_named(quirks.grade_unit or "0.1%")
        except ValueError as err:
            raise ProfileError(f"profile {profile.name!r}: {err}") from err
        if not _carries(profile.speed.increment, self.speed_unit):
            raise ProfileError(
                f"profile {profile.name!r}: speed increment {profile.speed.increment} cannot be "
                f"sent exactly in CSAFE units of {self.speed_unit.resolution}"
            )
        if not _carries(profile.incline.increment, self.grade_unit):
            raise ProfileError(
                f"profile {profile.name!r}: incline increment {profile.incline.increment} "
                f"cannot be sent exactly in CSAFE units of {self.grade_unit.resolution}"
            )
        self.destination = self._address(url)
        self.state: MachineState | None = None
        #: the frame toggle of the last answer (None: lost track, the next answer is taken)
        self.toggle: bool | None = None
        #: whether SetSpeed/SetGrade are taken during a workout (None: not known yet)
        self.sets_in_workout: bool | None = None
        self._decoder = csafe.FrameDecoder()
        self._status_frame = csafe.encode_frame(POLL_COMMANDS, destination=self.destination)
        self._targets: dict[str, Quantity] = {}  # what the program wants, re-applied as needed
        self._presets: set[str] = set()  # targets the console holds as presets right now
        self._watching: dict[str, _Watch] = {}
        self._console_targets: dict[str, Quantity] = {}  # asked of the operator
        self._expected: Collection[MachineState] = ()
        self._distance = Totals()
        self._work = Totals()

    @staticmethod
    def _address(url: DeviceUrl) -> int | None:
        text = url.options.get("address")
        if text is None:
            return None
        try:
            address = int(text, 0)
        except ValueError:
            address = -1
        if not 0 <= address <= 0xFF:
            raise DeviceUrlError(
                f"{url.text!r}: address={text!r} must be a byte (0-255 or 0x00-0xFF)\n"
                f"  grammar: {grammar_for(url.scheme)}"
            )
        return address

    @property
    def polls(self) -> bool:
        return True

    # -- frames -------------------------------------------------------------------------------

    def _decode(self, data: bytes) -> list[Response | ProtocolError]:
        out: list[Response | ProtocolError] = []
        for frame in self._decoder.feed(data):
            if isinstance(frame, ProtocolError):
                out.append(frame)
                continue
            if self.destination is not None and (
                frame.destination != OUR_ADDRESS
                or (self.destination != 0xFF and frame.source != self.destination)
            ):
                log.debug("%s: frame for someone else: %r", self.port, frame)
                continue
            try:
                out.append(csafe.parse_response(frame.contents))
            except ProtocolError as err:
                out.append(err)
        return out

    def _fit(self, response: Response) -> Fit:
        """An answer with the toggle of the one before is a stale copy, or "not taken"."""
        if self.toggle is not None and response.status.toggle == self.toggle:
            return Fit.HOLD
        return Fit.TAKE

    def _lost_track(self) -> None:
        self.toggle = None  # a frame may have been taken without our seeing its answer

    def _probe(self) -> tuple[bytes, Callable[[Response], Fit]]:
        return self._status_frame, self._fit

    async def _ask(self, name: str, frame: bytes) -> tuple[Response, bool]:
        """One frame, answered: the answer, and whether the console took the frame."""
        response, held = await self._request(name, frame, self._fit)
        self.toggle = response.status.toggle
        return response, not held

    async def _status(self, name: str) -> Response:
        """The status frame: its reading is published as telemetry."""
        response, _ = await self._ask(name, self._status_frame)
        self._observe(response.status.state)
        self.publish(self._telemetry(response))
        return response

    async def _carry_out(
        self,
        name: str,
        commands: tuple[Command, ...],
        *,
        leads_to: Collection[MachineState] = (),
        nothing_to_do: Callable[[MachineState], bool] | None = None,
    ) -> Response:
        """Send ``commands`` in one frame and make sure the console carried them out.

        ``leads_to`` are the states these commands may bring (another change was made at the
        console); ``nothing_to_do`` accepts a refusal when the state shows it is moot (stopping
        a console that is not in a workout). Returns the status frame's answer.
        """
        frame = csafe.encode_frame(commands, destination=self.destination)
        for attempt in range(NOT_READY_RETRIES + 1):
            self._expected = leads_to
            try:
                answer, taken = await self._ask(name, frame)
                after = await self._status(name)
            finally:
                self._expected = ()
            refused = next(
                (
                    bits
                    for bits in (answer.status.previous, after.status.previous)
                    if bits in csafe.REFUSED
                ),
                None,
            )
            if taken and refused is None:
                return after
            state = after.status.state
            if nothing_to_do is not None and nothing_to_do(state):
                return after
            log.info(
                "%s: %s not carried out (toggle %s, bits %s, state %s; try %d)",
                self.port,
                name,
                "held" if not taken else "flipped",
                refused.name if refused else "ok",
                state.name,
                attempt + 1,
            )
            if refused is not PreviousFrame.NOT_READY or attempt == NOT_READY_RETRIES:
                raise self._refusal(name, commands, state, refused)
            await asyncio.sleep(RETRY_PAUSE_S)
        raise AssertionError("unreachable")  # pragma: no cover

    def _refusal(
        self,
        name: str,
        commands: tuple[Command, ...],
        state: MachineState,
        bits: PreviousFrame | None,
    ) -> CommandRejected:
        what = " ".join(command.name for command in commands)
        detail = f"the console did not carry out {what} in state {state.name}"
        if state in (MachineState.ERROR, MachineState.OFFLINE):
            return CommandRejected(
                name,
                Rejection.NOT_READY,
                f"{detail}: the console reports an error (safety key out?)",
            )
        if state is MachineState.MANUAL:
            return CommandRejected(name, Rejection.NOT_PERMITTED, f"{detail}: manual mode")
        if bits is PreviousFrame.NOT_READY:
            return CommandRejected(name, Rejection.NOT_READY, detail)
        sets = all(not command.short for command in commands)
        return CommandRejected(
            name, Rejection.INVALID_PARAMETER if sets else Rejection.NOT_PERMITTED, detail
        )

    # -- the machine's state ------------------------------------------------------------------

    def _observe(self, state: MachineState) -> None:
        """Track the CSAFE state; a change we did not ask for was made at the console."""
        before, self.state = self.state, state
        if before == state:
            return
        if state in PRESETS_LOST:
            self._presets.clear()  # GoIdle, GoReady and Reset clear them; so may the console
        if state not in WORKOUT:
            self._watching.pop(SPEED, None)
        if before is None or state in self._expected:
            return
        kind: MachineEventKind | None = None
        if state is MachineState.IN_USE:
            kind = MachineEventKind.STARTED_AT_CONSOLE
        elif state is MachineState.PAUSED and before is MachineState.IN_USE:
            kind = MachineEventKind.PAUSED_AT_CONSOLE
        elif before in WORKOUT and state not in WORKOUT:
            # Finished, Idle, Ready or an error (CSAFE gives no reason; a pulled safety key
            # shows this way on many consoles): the belt stopped without being asked to.
            kind = MachineEventKind.STOPPED_AT_CONSOLE
        if kind is not None:
            log.info("%s: %s (%s -> %s)", self.port, kind.value, before.name, state.name)
            self.publish(MachineEvent(self.clock.now(), kind))

    # -- telemetry ----------------------------------------------------------------------------

    async def _handshake(self) -> None:
        response, _ = await self._ask("connect", self._status_frame)
        self.state = response.status.state
        self.publish(self._telemetry(response))

    async def _poll(self) -> Telemetry:
        response, _ = await self._exchange(self._status_frame, self._fit)
        self.toggle = response.status.toggle
        self._observe(response.status.state)
        return self._telemetry(response)

    def _telemetry(self, response: Response) -> Telemetry:
        reading = csafe.read_status(response)
        now = self.clock.now()
        self._read_back(now, reading)
        return Telemetry(
            at=now,
            speed=reading.speed,
            incline=reading.grade,
            distance_m=self._distance.update(reading.distance_m),
            elapsed_s=self._work.update(reading.elapsed_s),
            belt=_BELT.get(
                reading.state,
                BeltStatus.RUNNING if reading.speed.value > 0 else BeltStatus.STOPPED,
            ),
        )

    def _read_back(self, now: float, reading: csafe.Reading) -> None:
        """Targets against what the console reports: reached, due, or missed (reported)."""
        speed_gap = self.profile.confirm.tolerance_mph.value
        grade_gap = max(
            float(reading.grade_step.size) / 2, float(self.profile.incline.increment.size)
        )
        for what, value, gap in (
            (SPEED, reading.speed.to(Unit.MPH), speed_gap),
            (INCLINE, reading.grade, grade_gap),
        ):
            console = self._console_targets.get(what)
            if console is not None and abs(float(value.value) - _amount(console)) <= gap:
                del self._console_targets[what]
                kind = (
                    MachineEventKind.TARGET_SPEED_CHANGED
                    if what == SPEED
                    else MachineEventKind.TARGET_INCLINE_CHANGED
                )
                self.publish(MachineEvent(now, kind, value if what == INCLINE else reading.speed))
            watch = self._watching.get(what)
            if watch is None:
                continue
            if abs(float(value.value) - _amount(watch.target)) <= gap:
                del self._watching[what]
            elif now > watch.deadline:
                del self._watching[what]
                shown = reading.speed if what == SPEED else reading.grade
                log.warning(
                    "%s: %s %s accepted but not reached: the console reads %s after %g s",
                    self.port,
                    what,
                    _show(watch.target),
                    _show(shown),
                    self.profile.confirm.timeout_s,
                )
                self.publish(MachineEvent(now, MachineEventKind.TARGET_NOT_REACHED, shown))

    def _watch(self, what: str) -> None:
        target = self._targets.get(what)
        if target is not None:
            self._watching[what] = _Watch(target, self.clock.now() + self.profile.confirm.timeout_s)

    # -- commands -----------------------------------------------------------------------------

    async def _do_start(self) -> None:
        self._refuse_read_only("start", "start the belt on the treadmill console")
        if self.state not in WORKOUT:
            await self._prepare("start")
        await self._carry_out(
            "start",
            (csafe.GO_IN_USE,),
            leads_to=(MachineState.IN_USE,),
            nothing_to_do=lambda state: state is MachineState.IN_USE,
        )
        for what in (INCLINE, SPEED):
            self._watch(what)

    async def _prepare(self, name: str) -> None:
        """Bring the console where presets hold (Idle/HaveID) and give it every target again
        that it may have lost."""
        if self.state not in PRESETS_HOLD:
            await self._carry_out(
                name,
                (csafe.GO_IDLE,),
                leads_to=(MachineState.IDLE,),
                nothing_to_do=lambda state: state in PRESETS_HOLD,
            )
        for what in (INCLINE, SPEED):
            if what in self._targets and what not in self._presets:
                await self._carry_out(name, (self._set_command(what),))
                self._presets.add(what)

    async def _do_stop(self) -> None:
        self._refuse_read_only("stop", "STOP the belt on the treadmill console now")
        await self._carry_out(
            "stop",
            (csafe.GO_FINISHED,),
            leads_to=(MachineState.FINISHED,),
            nothing_to_do=lambda state: state not in WORKOUT,
        )

    async def _do_pause(self) -> None:
        """CSAFE has no pause: the workout ends and the belt stops."""
        await self._do_stop()

    async def _do_set_speed(self, speed: Quantity) -> None:
        if self.profile.quirks.read_only:
            self._console_targets[SPEED] = speed
            raise CommandRejected(
                "set speed",
                Rejection.READ_ONLY,
                f"set {_show(speed)} on the treadmill console; retrotread checks the belt speed",
            )
        self._set_command(SPEED, speed)  # refuse what CSAFE cannot carry before remembering it
        await self._set("set speed", SPEED, speed)

    async def _do_set_incline(self, incline: Quantity) -> None:
        self._refuse_read_only("set incline", f"set the incline to {_show(incline)} on the console")
        self._set_command(INCLINE, incline)
        await self._set("set incline", INCLINE, incline)

    async def _set(self, name: str, what: str, value: Quantity) -> None:
        self._targets[what] = value
        self._presets.discard(what)
        self._console_targets.pop(what, None)
        if self.state not in WORKOUT:
            await self._prepare(name)  # a preset, held until GoInUse
            return
        if self.sets_in_workout is False:
            raise self._ask_operator(name, what, value)
        try:
            await self._carry_out(name, (self._set_command(what),))
        except CommandRejected as err:
            if (
                self.state not in WORKOUT
                or err.reason is not Rejection.INVALID_PARAMETER
                or self.sets_in_workout  # it took sets before: this refusal is about the value
            ):
                raise
            # Consoles that take sets only before the workout (the Matrix firmware's command
            # table) refuse every one during it: learn it once, and ask the operator.
            log.warning("%s: this console takes no %s during a workout", self.port, what)
            self.sets_in_workout = False
            raise self._ask_operator(name, what, value) from err
        self.sets_in_workout = True
        self._presets.add(what)
        self._watch(what)

    def _ask_operator(self, name: str, what: str, value: Quantity) -> CommandRejected:
        self._console_targets[what] = value
        where = "speed" if what == SPEED else "incline"
        return CommandRejected(
            name,
            Rejection.NOT_DURING_WORKOUT,
            f"set the {where} to {_show(value)} on the treadmill console; retrotread checks it",
        )

    def _set_command(self, what: str, value: Quantity | None = None) -> Command:
        value = value if value is not None else self._targets[what]
        build, unit = (
            (csafe.set_speed, self.speed_unit)
            if what == SPEED
            else (csafe.set_grade, self.grade_unit)
        )
        try:
            return build(value, unit)
        except ValueError as err:
            raise CommandRejected(
                f"set {_show(value)}", Rejection.INVALID_PARAMETER, f"CSAFE cannot carry it: {err}"
            ) from err


def _amount(value: Quantity) -> float:
    """A target in the unit readings are compared in (mph for speed, % for incline)."""
    return float(value.value if value.unit is Unit.PERCENT else value.to(Unit.MPH).value)
