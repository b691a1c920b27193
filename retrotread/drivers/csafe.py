"""CSAFE treadmills (Life Fitness, Precor, Cybex, Matrix club consoles) over RS-232.

Reached through any pyserial URL with ``?protocol=csafe`` (see
:mod:`retrotread.drivers.serial_link`). The driver

* polls ``GetStatus GetSpeed GetGrade GetHorizontal GetTWork`` in one frame every ``poll``
  seconds (0.5 by default) for telemetry;
* runs the workout with ``GoIdle``/``GoInUse`` (start) and ``GoFinished`` (stop);
* sends ``SetSpeed`` / ``SetGrade`` in the units the profile names (``quirks.speed_unit``,
  ``quirks.grade_unit``; 0.1 mph and 0.1 % by default): 2.6 mph goes out as
  ``F1 25 03 1A 00 11 2D F2``;
* asks again when a frame is refused or its answer is garbled or missing, inside the profile's
  command timeout (the CSAFE 1 s rule per answer), then reports the failure;
* reports what a person does at the console (start, pause, stop, an error state) from the
  state in each status byte.

CSAFE has no pause: :meth:`pause` ends the workout like :meth:`stop`.

A profile with ``quirks.read_only`` is a console that can be read but not driven: nothing but
polls is sent; every command is refused with :attr:`~retrotread.errors.Rejection.READ_ONLY`
and an instruction for the operator ("set 2.6 mph on the treadmill console"), and when the
reported speed reaches what the operator was asked to set, the driver reports the change as
made at the console.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import ClassVar

from retrotread.clock import Clock
from retrotread.drivers.base import BeltStatus, MachineEvent, MachineEventKind, Telemetry
from retrotread.drivers.serial_link import SerialTreadmill, grammar_for
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
from retrotread.protocols.csafe import Command, MachineState, Response
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
WORKOUT = (MachineState.IN_USE, MachineState.PAUSED)
_BELT = {MachineState.IN_USE: BeltStatus.RUNNING, MachineState.PAUSED: BeltStatus.PAUSED}


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
        self._decoder = csafe.FrameDecoder()
        self._poll_frame = csafe.encode_frame(POLL_COMMANDS, destination=self.destination)
        self._console_target: Quantity | None = None

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

    async def _transact(
        self,
        command: str,
        commands: tuple[Command, ...],
        *,
        ours: Collection[MachineState] = (),
        done_if: Callable[[MachineState], bool] | None = None,
    ) -> Response:
        """Send ``commands`` in one frame until the machine carries them all out.

        ``ours`` are the states these commands lead to (a change to any other state was made
        at the console); ``done_if`` accepts a refusal when the state shows nothing is left to
        do (stopping a machine that is not running).
        """
        frame = csafe.encode_frame(commands, destination=self.destination)

        def matches(response: Response) -> bool:
            return response.answered(commands) == len(response.replies)

        def verdict(response: Response) -> CommandRejected | None:
            status = response.status
            if status.previous is not csafe.PreviousFrame.OK:
                log.info("%s: machine reports previous frame %s", self.port, status.previous.name)
            done = response.answered(commands)
            self._observe(status.state, ours=status.state in ours)
            if done == len(commands) or (done_if is not None and done_if(status.state)):
                return None
            refused = commands[done]
            return CommandRejected(
                command,
                self._rejection(response, refused),
                f"the machine refused {refused.name} in state {status.state.name}",
            )

        return await self._request(command, frame, matches, verdict)

    @staticmethod
    def _rejection(response: Response, refused: Command) -> Rejection:
        state, previous = response.status.state, response.status.previous
        if state in (MachineState.ERROR, MachineState.OFFLINE):
            return Rejection.NOT_READY
        if previous is csafe.PreviousFrame.NOT_READY:
            return Rejection.NOT_READY
        if state is MachineState.MANUAL:
            return Rejection.NOT_PERMITTED
        return Rejection.NOT_PERMITTED if refused.short else Rejection.INVALID_PARAMETER

    # -- the machine's state ------------------------------------------------------------------

    def _observe(self, state: MachineState, *, ours: bool) -> None:
        """Track the CSAFE state; a change we did not cause was made at the console."""
        before, self.state = self.state, state
        if ours or before is None or before == state:
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

    @staticmethod
    def _poll_matches(response: Response) -> bool:
        return response.answered(POLL_COMMANDS) == len(response.replies)

    async def _handshake(self) -> None:
        def verdict(response: Response) -> CommandRejected | None:
            if response.answered(POLL_COMMANDS) == len(POLL_COMMANDS):
                return None
            return CommandRejected("telemetry query", Rejection.NOT_SUPPORTED)

        response = await self._request("connect", self._poll_frame, self._poll_matches, verdict)
        self.state = response.status.state
        self.publish(self._telemetry(response))

    async def _poll(self) -> Telemetry:
        response = await self._exchange(self._poll_frame, self._poll_matches, self.reply_timeout)
        if response.answered(POLL_COMMANDS) != len(POLL_COMMANDS):
            raise ProtocolError("CSAFE: the machine refused the telemetry query")
        self._observe(response.status.state, ours=False)
        telemetry = self._telemetry(response)
        self._check_console_target(telemetry.speed)
        return telemetry

    def _telemetry(self, response: Response) -> Telemetry:
        speed, grade, distance, work = response.replies[1:5]
        return Telemetry(
            at=self.clock.now(),
            speed=csafe.read_speed(speed),
            incline=csafe.read_grade(grade),
            distance_m=csafe.read_distance_m(distance),
            elapsed_s=csafe.read_elapsed_s(work),
            belt=_BELT.get(response.status.state, BeltStatus.STOPPED),
        )

    def _check_console_target(self, speed: Quantity) -> None:
        target = self._console_target
        if target is None:
            return
        gap = abs(speed.to(Unit.MPH).value - target.to(Unit.MPH).value)
        if gap <= self.profile.confirm.tolerance_mph.value:
            self._console_target = None
            self.publish(
                MachineEvent(self.clock.now(), MachineEventKind.TARGET_SPEED_CHANGED, speed)
            )

    # -- commands -----------------------------------------------------------------------------

    async def _do_start(self) -> None:
        self._refuse_read_only("start", "start the belt on the treadmill console")
        commands: tuple[Command, ...] = (csafe.GO_IN_USE,)
        ours: tuple[MachineState, ...] = (MachineState.IN_USE,)
        if self.state not in (MachineState.IDLE, MachineState.HAVE_ID, *WORKOUT):
            commands = (csafe.GO_IDLE, csafe.GO_IN_USE)  # a new workout starts from Idle
            ours = (MachineState.IN_USE, MachineState.IDLE)
        await self._transact(
            "start",
            commands,
            ours=ours,
            done_if=lambda state: state is MachineState.IN_USE,
        )

    async def _do_stop(self) -> None:
        self._refuse_read_only("stop", "STOP the belt on the treadmill console now")
        await self._transact(
            "stop",
            (csafe.GO_FINISHED,),
            ours=(MachineState.FINISHED,),
            done_if=lambda state: state not in WORKOUT,
        )

    async def _do_pause(self) -> None:
        """CSAFE has no pause: the workout ends and the belt stops."""
        await self._do_stop()

    async def _do_set_speed(self, speed: Quantity) -> None:
        if self.profile.quirks.read_only:
            self._console_target = speed
            raise CommandRejected(
                "set speed",
                Rejection.READ_ONLY,
                f"set {_show(speed)} on the treadmill console; retrotread checks the belt speed",
            )
        await self._transact("set speed", (self._amount(csafe.set_speed, speed, self.speed_unit),))

    async def _do_set_incline(self, incline: Quantity) -> None:
        self._refuse_read_only("set incline", f"set the incline to {_show(incline)} on the console")
        command = self._amount(csafe.set_grade, incline, self.grade_unit)
        await self._transact("set incline", (command,))

    @staticmethod
    def _amount(
        build: Callable[[Quantity, csafe.WireUnit], Command], value: Quantity, unit: csafe.WireUnit
    ) -> Command:
        try:
            return build(value, unit)
        except ValueError as err:
            raise CommandRejected(
                f"set {_show(value)}", Rejection.INVALID_PARAMETER, f"CSAFE cannot carry it: {err}"
            ) from err
