"""Trackmaster treadmills (clinical and research) over RS-232, 4800 baud.

Reached through any pyserial URL with ``?protocol=trackmaster``. The wire, as the Trackmaster
manual lists it "in HEX" (read the way the public trackmaster-python library speaks it; the
readings we took are in ``docs/trackmaster.md``):

* a command is one byte ``A<n>`` — ``A1`` start, ``A2`` stop, ``A3`` speed, ``A4`` grade —
  followed for ``A3``/``A4`` by four ASCII digits, in 0.1 mph and 0.1 % (2.6 mph is
  ``A3 30 30 32 36``, "0026"), with no terminator;
* the machine acknowledges with the one byte ``B<n>``, or ``BE`` (data out of range) / ``BF``
  (illegal command), which become :class:`~retrotread.errors.CommandRejected` with reason
  ``OUT_OF_RANGE`` / ``ILLEGAL_COMMAND`` and are not asked again;
* a profile with ``quirks.status_query`` also polls the status requests ``C1`` (answer ``D1``
  and four digits: the belt's actual speed in 0.1 mph) and ``C2`` (``D2``: the actual grade in
  0.1 %). A machine that calls them illegal is said so in the log and run without telemetry.

One frame is in flight at a time (:mod:`retrotread.drivers.serial_link`); an answer that cannot
belong to it (a ``B3`` while a stop is in flight) is a stale copy and skipped. A missing or
garbled answer is asked again within the profile's command timeout.

Without status requests nothing tells what the belt does: :attr:`reports_belt` is False, no
telemetry is ever published (so nothing is confirmed, and a stop is never reported as a
confirmed one), and a command the machine refuses while it should take it — a speed while the
safety key is out — is reported as refused, never as done. Distance and time are counted from
connecting, from the polled speed (``reports_distance`` is False).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from typing import ClassVar

from retrotread.clock import Clock
from retrotread.drivers.base import BeltStatus, Telemetry
from retrotread.drivers.serial_link import Fit, SerialTreadmill, grammar_for
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

SPEED_RESOLUTION = Increment.of("0.1", Unit.MPH)
GRADE_RESOLUTION = Increment.of("0.1", Unit.PERCENT)
OUT_OF_RANGE = "BE"
ILLEGAL = "BF"
DIGITS = 4


class AnswerDecoder:
    """Bytes in, answers out: ``"B3"``, ``"BE"``, ``"D10026"``. Never raises."""

    def __init__(self) -> None:
        self._status: int | None = None  # a D<n> byte whose digits are still coming
        self._digits = bytearray()

    def feed(self, data: bytes) -> list[str | ProtocolError]:
        out: list[str | ProtocolError] = []
        for byte in data:
            if self._status is not None:
                if 0x30 <= byte <= 0x39:
                    self._digits.append(byte)
                    if len(self._digits) == DIGITS:
                        out.append(f"{self._status:02X}{self._digits.decode('ascii')}")
                        self._status = None
                    continue
                out.append(ProtocolError(f"Trackmaster: {self._status:02X} answer cut short"))
                self._status = None
            if 0xB0 <= byte <= 0xBF:
                out.append(f"{byte:02X}")
            elif 0xD0 <= byte <= 0xDF:
                self._status, self._digits = byte, bytearray()
            else:
                out.append(ProtocolError(f"Trackmaster: unexpected byte {byte:02X}"))
        return out


def encode(code: str, value: int | None = None) -> bytes:
    """``encode("A3", 26)`` -> ``A3 30 30 32 36`` (the command byte, then "0026")."""
    try:
        command = bytes.fromhex(code)
    except ValueError:
        command = b""
    if len(command) != 1:
        raise ValueError(f"{code!r} is not one hex byte")
    if value is None:
        return command
    if not 0 <= value <= 9999:
        raise ValueError(f"{code}: {value} does not fit in {DIGITS} digits")
    return command + f"{value:0{DIGITS}d}".encode("ascii")


def read_value(answer: str, code: str) -> int:
    """The 4-digit value of a status answer such as ``D10026`` (for ``code`` ``"D1"``)."""
    digits = answer[len(code) :]
    if not answer.startswith(code) or len(digits) != DIGITS or not digits.isdigit():
        raise ProtocolError(f"Trackmaster: {answer!r} is not {code} and {DIGITS} digits")
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
        self._decoder = AnswerDecoder()
        self._elapsed_s = 0.0
        self._distance_m = 0.0
        self._last_sample: tuple[float, Quantity] | None = None

    @property
    def polls(self) -> bool:
        return self.status_query

    def _decode(self, data: bytes) -> list[str | ProtocolError]:
        return self._decoder.feed(data)

    # -- asking -------------------------------------------------------------------------------

    async def _command(self, command: str, request: bytes) -> str:
        answers = "D" if request[0] >> 4 == 0xC else "B"
        expected = f"{answers}{request[0] & 0x0F:X}"

        def fit(answer: str) -> Fit:
            if answer in (OUT_OF_RANGE, ILLEGAL) or answer.startswith(expected):
                return Fit.TAKE
            return Fit.SKIP  # another command's acknowledgement: a stale copy

        answer, _ = await self._request(command, request, fit)
        if answer == OUT_OF_RANGE:
            raise CommandRejected(command, Rejection.OUT_OF_RANGE, "the machine answered BE")
        if answer == ILLEGAL:
            raise CommandRejected(
                command,
                Rejection.ILLEGAL_COMMAND,
                "the machine answered BF (a command it knows: stopped at the console, or the "
                "safety key out?)",
            )
        return answer

    def _probe(self) -> tuple[bytes, Callable[[str], Fit]] | None:
        if not self.status_query:
            return None  # every other command moves the machine
        return encode("C1"), lambda answer: Fit.TAKE if answer[0] in "BD" else Fit.SKIP

    async def _handshake(self) -> None:
        if not self.status_query:
            return  # no harmless command to ask with: opening the port is all we can check
        try:
            await self._command("speed query", encode("C1"))
        except CommandRejected as err:
            log.warning(
                "%s: the machine does not answer the speed query (%s); carrying on without "
                "telemetry: speeds and the final stop cannot be confirmed",
                self.port,
                err,
            )
            self.status_query = False

    async def _poll(self) -> Telemetry:
        speed_answer = await self._command("speed query", encode("C1"))
        grade_answer = await self._command("grade query", encode("C2"))
        speed = mph(Fraction(read_value(speed_answer, "D1"), 10))
        incline = percent(Fraction(read_value(grade_answer, "D2"), 10))
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
        await self._command("start", encode("A1"))

    async def _do_stop(self) -> None:
        self._refuse_read_only("stop", "STOP the belt on the treadmill console now")
        await self._command("stop", encode("A2"))

    async def _do_pause(self) -> None:
        """Trackmaster has no pause: the belt stops."""
        await self._do_stop()

    async def _do_set_speed(self, speed: Quantity) -> None:
        self._refuse_read_only("set speed", f"set {speed} on the treadmill console")
        await self._command("set speed", self._encoded("A3", speed, SPEED_RESOLUTION))

    async def _do_set_incline(self, incline: Quantity) -> None:
        self._refuse_read_only("set incline", f"set the incline to {incline} on the console")
        await self._command("set incline", self._encoded("A4", incline, GRADE_RESOLUTION))

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


__all__ = ["AnswerDecoder", "TrackmasterDriver", "encode", "read_value"]
