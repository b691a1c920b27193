"""A simulated Bluetooth heart-rate strap: the standard Heart Rate Service over the radio.

The strap serves Heart Rate Service 0x180D with Heart Rate Measurement 0x2A37 (notify, once a
second) and Body Sensor Location 0x2A38 (read: chest), as the Bluetooth SIG's Heart Rate
Service 1.0 and GATT Specification Supplement lay them out. It advertises 0x180D, so a
scanner that looks for heart-rate straps finds it, and bleak reaches it through the same
simulated backend as the treadmill (:mod:`retrotread_sim.ftms.bleak_backend`).

The heart behind it (:class:`HeartModel`) follows the work on the belt it is given: a steady
state that rises with speed and with climbing (speed times incline), reached with a lag, and
left more slowly on recovery than it was approached (first-order, separate time constants).
The figures are round and plausible, not a physiological claim: what matters to the tests is
that a walk on an incline raises the rate over tens of seconds and an easier pace brings it
down again, on whatever clock the machine runs (virtual in tests).

Heart Rate Measurement, as sent here (GATT Specification Supplement 3.113):

    flags    uint8   bit 0: value format (0 uint8, 1 uint16); bits 1-2: sensor contact
                     (0b11 supported and detected, 0b10 supported, not detected); bit 3:
                     energy expended present; bit 4: RR-intervals present
    value    uint8 or uint16 (bpm)
    energy   uint16 kJ, if flagged
    RR       uint16 each, 1/1024 s, if flagged
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from retrotread_sim.belt import SimTreadmill
from retrotread_sim.clock import LoopClock, SimClock
from retrotread_sim.ftms.codec import uuid16
from retrotread_sim.ftms.gatt import (
    AttError,
    Characteristic,
    GattError,
    Service,
    assign_handles,
)
from retrotread_sim.ftms.radio import Advert
from retrotread_sim.ftms.server import Central

HEART_RATE_SERVICE = uuid16(0x180D)
HEART_RATE_MEASUREMENT = uuid16(0x2A37)
BODY_SENSOR_LOCATION = uuid16(0x2A38)
CHEST = 1  # Body Sensor Location: 1 = chest

DEFAULT_STRAP_ADDRESS = "C0:FF:EE:18:0D:01"
NOTIFY_INTERVAL_S = 1.0

FLAG_UINT16 = 0x01
FLAG_CONTACT_DETECTED = 0x02
FLAG_CONTACT_SUPPORTED = 0x04
FLAG_ENERGY = 0x08
FLAG_RR = 0x10

#: What the model reads from the belt: (speed km/h, incline %), or None when nobody walks.
Workload = Callable[[], tuple[float, float] | None]


def belt_workload(machine: SimTreadmill) -> Workload:
    """The work a walker on ``machine``'s belt does, read from the machine itself."""

    def read() -> tuple[float, float]:
        snapshot = machine.snapshot()
        return snapshot.speed_kmh, snapshot.incline_pct

    return read


@dataclass
class HeartModel:
    """A heart rate that follows the workload with a lag, and recovers more slowly."""

    workload: Workload
    clock: SimClock = field(default_factory=LoopClock)
    rest_bpm: float = 70.0
    max_bpm: float = 190.0
    bpm_per_kmh: float = 6.0  # flat walking and running
    bpm_per_kmh_pct: float = 0.8  # climbing: speed x incline
    rise_tau_s: float = 30.0
    recovery_tau_s: float = 60.0
    #: Test API: a fixed reading instead of the model (None: the model).
    forced_bpm: int | None = None

    def __post_init__(self) -> None:
        self._bpm = self.rest_bpm
        self._last = self.clock.now()

    def target(self, speed_kmh: float, incline_pct: float) -> float:
        """The steady state for a pace held long enough."""
        climb = speed_kmh * max(0.0, incline_pct)
        steady = self.rest_bpm + self.bpm_per_kmh * speed_kmh + self.bpm_per_kmh_pct * climb
        return min(self.max_bpm, steady)

    def bpm(self) -> int:
        """The rate now (advances the model to the clock's time)."""
        now = self.clock.now()
        dt, self._last = max(0.0, now - self._last), now
        work = self.workload()
        goal = self.target(*work) if work is not None else self.rest_bpm
        tau = self.rise_tau_s if goal > self._bpm else self.recovery_tau_s
        self._bpm += (goal - self._bpm) * (1.0 - math.exp(-dt / tau))
        if self.forced_bpm is not None:
            return self.forced_bpm
        return round(self._bpm)


def encode_measurement(
    bpm: int,
    *,
    uint16: bool = False,
    contact: bool | None = True,
    energy_kj: int | None = None,
    rr_1024: Sequence[int] = (),
) -> bytes:
    """One Heart Rate Measurement value (the simulator's own codec)."""
    flags = 0
    wide = uint16 or bpm > 0xFF
    if wide:
        flags |= FLAG_UINT16
    if contact is not None:
        flags |= FLAG_CONTACT_SUPPORTED | (FLAG_CONTACT_DETECTED if contact else 0)
    if energy_kj is not None:
        flags |= FLAG_ENERGY
    if rr_1024:
        flags |= FLAG_RR
    data = bytes([flags]) + (struct.pack("<H", bpm) if wide else bytes([bpm]))
    if energy_kj is not None:
        data += struct.pack("<H", energy_kj)
    for rr in rr_1024:
        data += struct.pack("<H", rr)
    return data


@dataclass(eq=False)
class StrapLink:
    """One central's link to the strap."""

    server: HeartRateServer
    central: Central
    notifying: set[int] = field(default_factory=set)
    open: bool = True

    def pair(self) -> None:
        """A strap needs no pairing (Heart Rate Service is open); nothing to do."""

    def read(self, handle: int) -> bytes:
        characteristic = self.server.characteristic(handle)
        if characteristic.read is None:
            raise GattError(AttError.READ_NOT_PERMITTED, f"{characteristic.uuid} is not readable")
        return characteristic.read()

    def write(self, handle: int, data: bytes) -> None:
        characteristic = self.server.characteristic(handle)
        raise GattError(AttError.WRITE_NOT_PERMITTED, f"{characteristic.uuid} is not writable")

    def set_notify(self, handle: int, enabled: bool) -> None:
        characteristic = self.server.characteristic(handle)
        if not characteristic.notifies:
            raise GattError(
                AttError.REQUEST_NOT_SUPPORTED, f"{characteristic.uuid} does not notify"
            )
        if enabled:
            self.notifying.add(handle)
            self.server.start_notifying()
        else:
            self.notifying.discard(handle)

    def read_cccd(self, handle: int) -> bytes:
        return b"\x01\x00" if handle in self.notifying else b"\x00\x00"

    def close(self) -> None:
        self.server.detach(self)


class HeartRateServer:
    """The strap's GATT server: Heart Rate Service, notifying a measurement every second."""

    def __init__(
        self,
        model: HeartModel,
        *,
        uint16: bool = False,
        rr_intervals: bool = True,
        energy: bool = False,
    ) -> None:
        self.model = model
        #: Test API: send 16-bit values even below 256 (some straps always do).
        self.uint16 = uint16
        self.rr_intervals = rr_intervals
        self.energy = energy
        #: Test API: False takes the strap off the chest (contact lost, readings go on).
        self.contact = True
        self.connections: list[StrapLink] = []
        self.sent: list[bytes] = []
        self.services = [
            Service(
                HEART_RATE_SERVICE,
                [
                    Characteristic(HEART_RATE_MEASUREMENT, ("notify",)),
                    Characteristic(BODY_SENSOR_LOCATION, ("read",), read=lambda: bytes([CHEST])),
                ],
            )
        ]
        self._by_handle = assign_handles(self.services)
        self.measurement_handle = next(
            h for h, c in self._by_handle.items() if c.uuid == HEART_RATE_MEASUREMENT
        )
        self._ticker: asyncio.Task[None] | None = None
        self._energy_kj = 0.0

    def characteristic(self, handle: int) -> Characteristic:
        found = self._by_handle.get(handle)
        if found is None:
            raise GattError(AttError.REQUEST_NOT_SUPPORTED, f"no attribute at handle {handle}")
        return found

    def connect(self, central: Central) -> StrapLink:
        link = StrapLink(self, central)
        self.connections.append(link)
        return link

    def detach(self, link: StrapLink) -> None:
        link.open = False
        link.notifying.clear()
        if link in self.connections:
            self.connections.remove(link)

    def drop_all(self) -> None:
        """Every link goes down from the strap's side (out of range, battery)."""
        for link in list(self.connections):
            self.detach(link)
            link.central.dropped()

    def start_notifying(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def measurement(self) -> bytes:
        bpm = self.model.bpm()
        self._energy_kj += bpm * 0.004  # a rough kJ a beat-minute; only its flag matters
        rr = [round(60.0 / bpm * 1024)] if self.rr_intervals and bpm > 0 else []
        return encode_measurement(
            bpm,
            uint16=self.uint16,
            contact=self.contact,
            energy_kj=round(self._energy_kj) if self.energy else None,
            rr_1024=rr,
        )

    async def _tick(self) -> None:
        clock = self.model.clock
        next_at = clock.now()
        while any(self.measurement_handle in link.notifying for link in self.connections):
            data = self.measurement()
            self.sent.append(data)
            for link in list(self.connections):
                if link.open and self.measurement_handle in link.notifying:
                    link.central.deliver(self.measurement_handle, data)
            next_at += NOTIFY_INTERVAL_S
            await clock.sleep_until(next_at)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None


class HeartStrap:
    """A chest strap advertising Heart Rate Service on a simulated radio."""

    def __init__(
        self,
        server: HeartRateServer,
        *,
        address: str = DEFAULT_STRAP_ADDRESS,
        name: str = "HRM-Sim 0D01",
        rssi: int = -62,
    ) -> None:
        self.server = server
        self.address = address.upper()
        self.name = name
        self.rssi = rssi
        self._worn = True

    @property
    def in_range(self) -> bool:
        return self._worn

    @property
    def advertising(self) -> bool:
        # A strap advertises while worn and not connected (one central at a time).
        return self._worn and not self.server.connections

    def advert(self) -> Advert:
        return Advert(
            local_name=self.name,
            service_uuids=[HEART_RATE_SERVICE],
            service_data={},
            tx_power=None,
            rssi=self.rssi,
        )

    def take_off(self) -> None:
        """Test API: the strap is taken off (or its battery dies): the link drops, no adverts."""
        self._worn = False
        self.server.drop_all()

    def put_on(self) -> None:
        self._worn = True
