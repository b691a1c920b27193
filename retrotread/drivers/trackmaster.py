"""Trackmaster treadmills (clinical and research) over RS-232, 4800 baud.

Reached through any pyserial URL with ``?protocol=trackmaster``. Commands are ``A<n>`` plus
ASCII digits, each acknowledged ``B<n>``: ``A1`` start, ``A2`` stop, ``A3dddd`` speed in
0.1 mph (2.6 mph is ``A30026``), ``A4dddd`` grade in 0.1 % (2.0 % is ``A40020``). ``BE`` (value
out of range) and ``BF`` (illegal command) become
:class:`~retrotread.errors.CommandRejected` with reason ``OUT_OF_RANGE`` / ``ILLEGAL_COMMAND``
and are not retried; a missing or garbled answer is asked again within the profile's command
timeout. Messages end with a carriage return (a line feed is accepted too).

Telemetry is not part of the core command set. Many units answer a speed and a grade query;
a profile that sets ``quirks.status_query`` has the driver poll ``A5`` (answer ``B5dddd``, belt
speed in 0.1 mph) and ``A6`` (``B6dddd``, grade in 0.1 %). If the machine calls those illegal,
the driver says so in the log and carries on without telemetry, as it does for a profile
without the quirk: commands are still sent and acknowledged, but nothing confirms the belt got
there, so the session reports every speed as unconfirmed and cannot confirm the final stop.
Distance is estimated from the polled speed (``reports_distance`` is False).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import ClassVar

from retrotread.clock import Clock
from retrotread.drivers.base import BeltStatus, Telemetry
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
from retrotread.units import Increment, Quantity, Unit, mph, percent

log = logging.getLogger(__name__)

TERMINATOR = b"\r"
LONGEST_ANSWER = 16
SPEED_RESOLUTION = Increment.of("0.1", Unit.MPH)
GRADE_RESOLUTION = Increment.of("0.1", Unit.PERCENT)
OUT_OF_RANGE = "BE"
ILLEGAL = "BF"


class LineDecoder:
    """Bytes in, answers out (CR or LF ends one). Never raises: broken lines become errors."""

    def __init__(self) -> None:
        self._line = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[str | ProtocolError]:
        out: list[str | ProtocolError] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if not self._overflow and self._line:
                    out.append(self._finish(bytes(self._line)))
                self._line.clear()
                self._overflow = False
            elif not self._overflow:
                self._line.append(byte)
                if len(self._line) > LONGEST_ANSWER:
                    out.append(ProtocolError(f"Trackmaster: answer longer than {LONGEST_ANSWER}"))
                    self._line.clear()
                    self._overflow = True
        return out

    @staticmethod
    def _finish(line: bytes) -> str | ProtocolError:
        if not all(0x20 <= byte <= 0x7E for byte in line):
            return ProtocolError(f"Trackmaster: unreadable answer {line!r}")
        return line.decode("ascii").strip()


def encode(code: str, value: int | None = None) -> bytes:
    """``encode("A3", 26)`` -> ``b"A30026\\r"``."""
    if value is None:
        return code.encode("ascii") + TERMINATOR
    if not 0 <= value <= 9999:
        raise ValueError(f"{code}: {value} does not fit in 4 digits")
    return f"{code}{value:04d}".encode("ascii") + TERMINATOR


def read_value(answer: str, code: str) -> int:
    """The 4-digit value of an answer such as ``B50026`` (for ``code`` ``"B5"``)."""
    digits = answer[len(code) :]
    if not answer.startswith(code) or len(digits) != 4 or not digits.isdigit():
        raise ProtocolError(f"Trackmaster: {answer!r} is not {code} and 4 digits")
    return int(digits)


def _whole(increment: Increment, resolution: Increment) -> bool:
    steps = Quantity(increment.size, increment.unit).to(resolution.unit).value / resolution.size
    return steps.denominator == 1


class TrackmasterDriver(SerialTreadmill[str]):
    scheme: ClassVar[str] = "serial"
    url_grammar: ClassVar[str] = grammar_for("serial")
    default_profile: ClassVar[str] = "generic-trackmaster"
    protocol: ClassVar[str] = "trackmaster"
    default_baud: ClassVar[int] = 4800
    retry_rejections: ClassVar[bool] = False  # BE and BF say the same thing every time
    reports_distance: ClassVar[bool] = False

    def __init__(self, url: DeviceUrl, profile: Profile, clock: Clock) -> None:
        super().__init__(url, profile, clock)
        if "address" in url.options:
            raise DeviceUrlError(
                f"{url.text!r}: address is a CSAFE option\n  grammar: {grammar_for(url.scheme)}"
            )
        for what, increment, resolution in (
            ("speed", profile.speed.increment, SPEED_RESOLUTION),
            ("incline", profile.incline.increment, GRADE_RESOLUTION),
        ):
            if not _whole(increment, resolution):
                raise ProfileError(
                    f"profile {profile.name!r}: {what} increment {increment} is not a whole "
                    f"number of Trackmaster's {resolution}"
                )
        self.status_query = profile.quirks.status_query
        self._decoder = LineDecoder()
        self._elapsed_s = 0.0
        self._distance_m = 0.0
        self._last_sample: tuple[float, Quantity] | None = None

    @property
    def polls(self) -> bool:
        return self.status_query

    def _decode(self, data: bytes) -> list[str | ProtocolError]:
        return self._decoder.feed(data)

    # -- asking -------------------------------------------------------------------------------

    async def _command(self, command: str, request: bytes, ack: str) -> str:
        def matches(answer: str) -> bool:
            return answer in (OUT_OF_RANGE, ILLEGAL) or answer[:2] == ack

        def verdict(answer: str) -> CommandRejected | None:
            if answer == OUT_OF_RANGE:
                return CommandRejected(command, Rejection.OUT_OF_RANGE, "the machine answered BE")
            if answer == ILLEGAL:
                return CommandRejected(
                    command, Rejection.ILLEGAL_COMMAND, "the machine answered BF"
                )
            return None

        return await self._request(command, request, matches, verdict)

    async def _handshake(self) -> None:
        if not self.status_query:
            return  # no harmless command to ask with: opening the port is all we can check
        try:
            await self._command("speed query", encode("A5"), "B5")
        except CommandRejected as err:
            log.warning(
                "%s: the machine does not answer the speed query (%s); carrying on without "
                "telemetry: speeds and the final stop cannot be confirmed",
                self.port,
                err,
            )
            self.status_query = False

    async def _poll(self) -> Telemetry:
        speed_answer = await self._command("speed query", encode("A5"), "B5")
        grade_answer = await self._command("grade query", encode("A6"), "B6")
        speed = mph(Fraction(read_value(speed_answer, "B5"), 10))
        incline = percent(Fraction(read_value(grade_answer, "B6"), 10))
        now = self.clock.now()
        if self._last_sample is not None:
            then, before = self._last_sample
            dt = now - then
            self._distance_m += (before.kmh + speed.kmh) / 2 / 3.6 * dt
            if before.value > 0 or speed.value > 0:
                self._elapsed_s += dt
        self._last_sample = (now, speed)
        moving = BeltStatus.RUNNING if speed.value > 0 else BeltStatus.STOPPED
        return Telemetry(now, speed, incline, self._distance_m, self._elapsed_s, moving)

    # -- commands -----------------------------------------------------------------------------

    async def _do_start(self) -> None:
        self._refuse_read_only("start", "start the belt on the treadmill console")
        await self._command("start", encode("A1"), "B1")

    async def _do_stop(self) -> None:
        self._refuse_read_only("stop", "STOP the belt on the treadmill console now")
        await self._command("stop", encode("A2"), "B2")

    async def _do_pause(self) -> None:
        """Trackmaster has no pause: the belt stops."""
        await self._do_stop()

    async def _do_set_speed(self, speed: Quantity) -> None:
        self._refuse_read_only("set speed", f"set {speed} on the treadmill console")
        await self._command("set speed", self._encoded("A3", speed, SPEED_RESOLUTION), "B3")

    async def _do_set_incline(self, incline: Quantity) -> None:
        self._refuse_read_only("set incline", f"set the incline to {incline} on the console")
        await self._command("set incline", self._encoded("A4", incline, GRADE_RESOLUTION), "B4")

    @staticmethod
    def _encoded(code: str, value: Quantity, resolution: Increment) -> bytes:
        try:
            count = value.to(resolution.unit).value / resolution.size
            if count.denominator != 1:
                raise ValueError(f"{value} is not a whole number of {resolution}")
            return encode(code, int(count))
        except ValueError as err:
            raise CommandRejected(
                f"{code} {value}", Rejection.INVALID_PARAMETER, f"cannot be sent: {err}"
            ) from err


__all__ = ["LineDecoder", "TrackmasterDriver", "encode", "read_value"]
