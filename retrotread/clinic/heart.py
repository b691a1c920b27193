"""Heart rate from a Bluetooth strap, and the client's ceiling.

A strap serves the Bluetooth SIG's Heart Rate Service (0x180D); its Heart Rate Measurement
characteristic (0x2A37) notifies about once a second. :func:`decode_measurement` reads one
value as the GATT Specification Supplement lays it out (3.113)::

    flags    uint8   bit 0: heart rate value format (0: uint8, 1: uint16)
                     bit 1: sensor contact detected; bit 2: sensor contact supported
                     bit 3: energy expended present; bit 4: RR-intervals present
    value    uint8 or uint16, beats per minute
    energy   uint16, kJ since reset (if bit 3)
    RR       uint16 each, 1/1024 s (if bit 4), to the end of the value

:class:`HeartRateMonitor` is a session listener: when the program starts it connects to the
strap through bleak, subscribes to 0x2A37, and once a second emits a :class:`HeartRateSample`
(recorded, shown on the console and the walker view, exported). Above the client's ceiling for
:data:`OVER_CEILING_S` the belt slows to the recovery speed through the session (the
governor still decides what may be sent) and the walker hears why (:class:`HeartRateAlert`);
below the ceiling by :data:`RELEASE_MARGIN_BPM` the program's own speeds return. A strap that
goes quiet or drops its link is a notice, never a stop: the session goes on, and the monitor
reconnects when the strap is back. While the heart rate is unknown, a recovery already asked
for stays (nothing says it is over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from retrotread.clock import Clock
from retrotread.errors import DeviceError
from retrotread.events import Event, Notice, ProgramFinished, ProgramStarted, SessionEnded
from retrotread.units import Quantity, format_number

if TYPE_CHECKING:
    from bleak import BleakClient

log = logging.getLogger(__name__)

HEART_RATE_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
HEART_RATE_MEASUREMENT = "00002a37-0000-1000-8000-00805f9b34fb"

#: Seconds above the ceiling before the belt slows (one beat of noise is not a trend).
OVER_CEILING_S = 2
#: The program's speeds return once the rate is this far below the ceiling.
RELEASE_MARGIN_BPM = 10
#: No reading for this long is a lost strap.
STALE_S = 5.0
#: A lost strap is looked for again this often.
RECONNECT_S = 5.0
#: A connect attempt gives up after this long.
CONNECT_TIMEOUT_S = 10.0


class HeartRateError(DeviceError):
    """A heart-rate strap cannot be reached, or sent bytes that do not decode."""


@dataclass(frozen=True)
class HeartMeasurement:
    bpm: int
    contact: bool | None  # None: the strap cannot tell
    energy_kj: int | None = None
    rr_s: tuple[float, ...] = ()


def decode_measurement(data: bytes | bytearray) -> HeartMeasurement:
    """One Heart Rate Measurement value (8- or 16-bit rate, contact, energy, RR-intervals)."""
    raw = bytes(data)
    if not raw:
        raise HeartRateError("an empty heart rate measurement")
    flags = raw[0]
    wide = bool(flags & 0x01)
    end = 3 if wide else 2
    if len(raw) < end:
        raise HeartRateError(f"a heart rate measurement too short for its flags: {raw.hex(' ')}")
    bpm = struct.unpack_from("<H", raw, 1)[0] if wide else raw[1]
    contact = bool(flags & 0x02) if flags & 0x04 else None
    energy = None
    if flags & 0x08:
        if len(raw) < end + 2:
            raise HeartRateError(f"energy expended flagged but missing: {raw.hex(' ')}")
        energy = struct.unpack_from("<H", raw, end)[0]
        end += 2
    rr: tuple[float, ...] = ()
    if flags & 0x10:
        count = (len(raw) - end) // 2
        rr = tuple(v / 1024 for v in struct.unpack_from(f"<{count}H", raw, end))
    return HeartMeasurement(bpm, contact, energy, rr)


# -- the ceiling ---------------------------------------------------------------------------------

#: Age-predicted maximum: 220 − age (the clinician picks a percentage of it).
AGE_MAX_BASE = 220


def ceiling_from_age(age: int, percent: float) -> int:
    """The clinician's ``percent`` of 220 − ``age``, in whole beats (rounded down)."""
    if not 5 <= age <= 110:
        raise ValueError(f"age {age} is outside 5–110")
    if not 30 <= percent <= 100:
        raise ValueError(
            f"{format_number(percent)} % of the age-predicted maximum is outside 30–100"
        )
    return int((AGE_MAX_BASE - age) * percent / 100)


# -- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeartRateSample(Event):
    """Once a second while the program runs: the last reading, or None while the strap is lost."""

    bpm: int | None
    ceiling: int | None
    recovering: bool


@dataclass(frozen=True)
class HeartRateAlert(Notice):
    """The heart rate crossed the ceiling (or came back under it): shown and spoken."""

    bpm: int
    ceiling: int
    recovering: bool


def heart_rate_text(sample: HeartRateSample) -> str:
    """What the console and the walker view show: '♥ 118 bpm (ceiling 130)'."""
    if sample.bpm is None:
        return "♥ no reading"
    ceiling = f" (ceiling {sample.ceiling})" if sample.ceiling is not None else ""
    slowed = ": slowed to recover" if sample.recovering else ""
    return f"♥ {sample.bpm} bpm{ceiling}{slowed}"


def over_ceiling_cue(bpm: int, ceiling: int) -> str:
    return f"Heart rate {bpm}, above {ceiling}. Slowing down: keep walking, breathe."


def back_under_cue(bpm: int) -> str:
    return f"Heart rate back to {bpm}. The program's pace returns."


# -- the monitor ---------------------------------------------------------------------------------


class HeartHost(Protocol):
    """What the monitor needs of a session: its events, and the recovery request."""

    def emit(self, event: Event) -> None: ...
    def request_recovery(self, speed: Quantity, reason: str) -> None: ...
    def release_recovery(self, reason: str) -> None: ...


@dataclass
class HeartRateMonitor:
    """A session listener that reads a strap and holds the client under their ceiling."""

    host: HeartHost
    address: str
    clock: Clock
    ceiling: int | None = None
    recovery_speed: Quantity | None = None
    samples: list[HeartRateSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.latest: HeartMeasurement | None = None
        self.latest_at: float | None = None
        self.recovering = False
        self.connected = False
        self._connected_at: float | None = None
        self._over_since: float | None = None
        self._lost_told = False
        self._task: asyncio.Task[None] | None = None
        self._link_dropped = asyncio.Event()

    # -- as a session listener ----------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, ProgramStarted) and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heart-rate")
        elif isinstance(event, ProgramFinished | SessionEnded) and self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- reading ------------------------------------------------------------------------------

    def on_measurement(self, data: bytes | bytearray) -> None:
        try:
            self.latest = decode_measurement(data)
        except HeartRateError as err:
            log.warning("heart-rate strap %s: %s", self.address, err)
            return
        self.latest_at = self.clock.now()

    def current_bpm(self) -> int | None:
        if not self.connected or self.latest is None or self.latest_at is None:
            return None
        if self.clock.now() - self.latest_at > STALE_S or self.latest.contact is False:
            return None
        return self.latest.bpm

    async def _run(self) -> None:
        client: BleakClient | None = None
        sampler = asyncio.get_running_loop().create_task(self._sample_every_second())
        try:
            while True:
                try:
                    client = await self._connect()
                except HeartRateError as err:
                    self._lost(str(err))
                    await self.clock.sleep_until(self.clock.now() + RECONNECT_S)
                    continue
                await self._link_dropped.wait()
                self._link_dropped.clear()
                self.connected = False
                self._lost("its link dropped")
                await self.clock.sleep_until(self.clock.now() + RECONNECT_S)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.disconnect()

    async def _connect(self) -> BleakClient:
        from bleak import BleakClient  # the Bluetooth stack only when a strap is used
        from bleak.exc import BleakError

        def dropped(_client: BleakClient) -> None:
            self._link_dropped.set()

        client = BleakClient(self.address, disconnected_callback=dropped)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await client.connect()
                await client.start_notify(
                    HEART_RATE_MEASUREMENT, lambda _c, data: self.on_measurement(data)
                )
        except (BleakError, OSError, TimeoutError) as err:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise HeartRateError(f"cannot reach the strap at {self.address}: {err}") from err
        self.latest, self.latest_at = None, None  # nothing from before the drop counts
        self.connected = True
        self._connected_at = self.clock.now()
        return client

    def _lost(self, why: str) -> None:
        if self._lost_told:
            return
        self._lost_told = True
        held = (
            " (the recovery pace stays until a reading says otherwise)" if self.recovering else ""
        )
        self.host.emit(
            Notice(
                self.clock.now(),
                f"heart-rate strap {self.address} lost: {why}; the session goes on without "
                f"heart rate{held}",
            )
        )

    # -- once a second ------------------------------------------------------------------------

    async def _sample_every_second(self) -> None:
        next_at = self.clock.now() + 1.0
        while True:
            await self.clock.sleep_until(next_at)
            next_at += 1.0
            self.tick()

    def tick(self) -> None:
        """One second: emit the sample, and hold the ceiling."""
        now = self.clock.now()
        bpm = self.current_bpm()
        heard = max(self.latest_at or 0.0, self._connected_at or 0.0)
        if bpm is None and self.connected and not self._lost_told:
            if now - heard > STALE_S:
                self._lost(f"no reading for {STALE_S:.0f} s")
            elif self.latest is not None and self.latest.contact is False:
                self._lost("no skin contact")
        if bpm is not None and self._lost_told:
            self._lost_told = False
            self.host.emit(Notice(now, f"heart-rate strap {self.address} is back: {bpm} bpm"))
        self._hold_ceiling(bpm, now)
        sample = HeartRateSample(now, bpm, self.ceiling, self.recovering)
        self.samples.append(sample)
        self.host.emit(sample)

    def _hold_ceiling(self, bpm: int | None, now: float) -> None:
        ceiling = self.ceiling
        if ceiling is None or bpm is None:
            self._over_since = None
            return
        if bpm > ceiling:
            if self._over_since is None:
                self._over_since = now
            if not self.recovering and now - self._over_since >= OVER_CEILING_S - 1e-9:
                self.recovering = True
                cue = over_ceiling_cue(bpm, ceiling)
                if self.recovery_speed is not None:
                    self.host.request_recovery(self.recovery_speed, cue)
                self.host.emit(HeartRateAlert(now, cue, bpm, ceiling, True))
            return
        self._over_since = None
        if self.recovering and bpm <= ceiling - RELEASE_MARGIN_BPM:
            self.recovering = False
            cue = back_under_cue(bpm)
            self.host.release_recovery(cue)
            self.host.emit(HeartRateAlert(now, cue, bpm, ceiling, False))
