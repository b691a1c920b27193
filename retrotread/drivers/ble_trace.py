"""The wire trace of a Bluetooth LE link: every GATT read, write, notification and indication.

pyftms builds its own ``BleakClient`` (through bleak-retry-connector), so the trace is taken
one level down, where every ``BleakClient`` hands its work to a backend: while a traced driver
is open, bleak's backend lookup (``bleak.get_platform_client_backend_type``, the same seam the
simulator's radio uses) returns a backend that wraps the platform's own and records what
crosses it. Nothing in bleak, bleak-retry-connector or pyftms is modified; a driver opens
:func:`wire_tracing` for as long as it is connected, and does nothing else for the trace.

What the machine declares is read from the trace's own reads: once pyftms has read Device
Information, Feature and the supported ranges and starts subscribing, the decoded values are
recorded as the link's ``machine`` record (:func:`decode_declarations`).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import bleak
from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTServiceCollection

from retrotread.clock import Clock
from retrotread.trace import Direction, FrameKind, LinkTap, short_uuid, tap_for

LOOKUP = "get_platform_client_backend_type"

#: Device Information characteristics by short UUID.
DEVICE_INFORMATION = {
    "2a29": "manufacturer",
    "2a24": "model",
    "2a25": "serial_number",
    "2a27": "hardware_revision",
    "2a26": "firmware_revision",
    "2a28": "software_revision",
}
FEATURE, SPEED_RANGE, INCLINE_RANGE = "2acc", "2ad4", "2ad5"
#: Fitness Machine Feature bits (first word) as FTMS 1.0 names them.
FEATURE_BITS = (
    "average_speed",
    "cadence",
    "total_distance",
    "inclination",
    "elevation_gain",
    "pace",
    "step_count",
    "resistance_level",
    "stride_count",
    "expended_energy",
    "heart_rate",
    "metabolic_equivalent",
    "elapsed_time",
    "remaining_time",
    "power_measurement",
    "force_on_belt_and_power_output",
    "user_data_retention",
)
#: Target Setting bits (second word).
TARGET_BITS = (
    "speed",
    "inclination",
    "resistance",
    "power",
    "heart_rate",
    "expended_energy",
    "step_number",
    "stride_number",
    "distance",
    "training_time",
)


def decode_declarations(reads: dict[str, bytes]) -> dict[str, Any]:
    """What Device Information, Feature and the ranges say, from their raw values."""
    declared: dict[str, Any] = {"protocol": "ftms"}
    info = {
        name: reads[uuid].decode("utf-8", errors="replace").strip("\0 ")
        for uuid, name in DEVICE_INFORMATION.items()
        if uuid in reads
    }
    if info:
        declared["device_info"] = info
    feature = reads.get(FEATURE)
    if feature is not None and len(feature) >= 8:
        features, targets = struct.unpack_from("<II", feature)
        declared["features"] = [n for i, n in enumerate(FEATURE_BITS) if features >> i & 1]
        declared["target_settings"] = [n for i, n in enumerate(TARGET_BITS) if targets >> i & 1]
    speed = reads.get(SPEED_RANGE)
    if speed is not None and len(speed) >= 6:
        low, high, step = struct.unpack_from("<HHH", speed)
        declared["speed_kmh"] = {"min": low / 100, "max": high / 100, "increment": step / 100}
    incline = reads.get(INCLINE_RANGE)
    if incline is not None and len(incline) >= 6:
        low, high, step = struct.unpack_from("<hhH", incline)
        declared["incline_pct"] = {"min": low / 10, "max": high / 10, "increment": step / 10}
    return declared


class TracedBackend(BaseBleakClient):
    """A bleak client backend that records what crosses the one it wraps."""

    inner_class: ClassVar[type[BaseBleakClient]]
    tap: ClassVar[LinkTap]

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        self._inner: BaseBleakClient | None = None
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=kwargs.get("timeout", 10.0),
        )
        self._inner = self.inner_class(address_or_ble_device, **kwargs)
        self._reads: dict[str, bytes] = {}
        self._declared = False

    @property
    def inner(self) -> BaseBleakClient:
        assert self._inner is not None
        return self._inner

    # bleak reads ``services`` off the backend; the wrapped one discovers them.
    @property
    def services(self) -> BleakGATTServiceCollection | None:
        return self._inner.services if self._inner is not None else None

    @services.setter
    def services(self, value: BleakGATTServiceCollection | None) -> None:
        if self._inner is not None:
            self._inner.services = value

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def mtu_size(self) -> int:
        return self.inner.mtu_size

    @property
    def is_connected(self) -> bool:
        return self.inner.is_connected

    def set_disconnected_callback(self, callback: Callable[[], None] | None, **kwargs: Any) -> None:
        self.inner.set_disconnected_callback(callback, **kwargs)

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        await self.inner.connect(pair, **kwargs)
        self.tap.event("connected", address=self.address)

    async def disconnect(self) -> None:
        await self.inner.disconnect()
        self.tap.event("disconnected")

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        await self.inner.pair(*args, **kwargs)
        self.tap.event("paired")

    async def unpair(self) -> None:
        await self.inner.unpair()

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        data = await self.inner.read_gatt_char(characteristic, **kwargs)
        self._reads[short_uuid(characteristic.uuid)] = bytes(data)
        self.tap.frame(Direction.IN, data, FrameKind.READ, characteristic=characteristic.uuid)
        return data

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        return await self.inner.read_gatt_descriptor(descriptor, **kwargs)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        try:
            await self.inner.write_gatt_char(characteristic, data, response)
        except Exception as err:
            self.tap.frame(
                Direction.OUT,
                bytes(data),
                FrameKind.WRITE,
                characteristic=characteristic.uuid,
                error=f"{type(err).__name__}: {err}",
            )
            raise
        # Recorded once the write went through, before the answer it may bring (an
        # indication comes after the write's response, never before).
        self.tap.frame(
            Direction.OUT, bytes(data), FrameKind.WRITE, characteristic=characteristic.uuid
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        await self.inner.write_gatt_descriptor(descriptor, data)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        if not self._declared:  # pyftms subscribes once it has read what the machine declares
            self._declared = True
            self.tap.declare(decode_declarations(self._reads))
        kind = FrameKind.INDICATE if "indicate" in characteristic.properties else FrameKind.NOTIFY
        tap, uuid = self.tap, characteristic.uuid

        def arrived(data: bytearray) -> None:
            tap.frame(Direction.IN, data, kind, characteristic=uuid)
            callback(data)

        await self.inner.start_notify(characteristic, arrived, **kwargs)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        await self.inner.stop_notify(characteristic)


@contextlib.contextmanager
def traced_bleak(tap: LinkTap) -> Iterator[None]:
    """While open, every ``BleakClient`` made without ``backend=`` records into ``tap``."""
    previous: Callable[[], tuple[type[BaseBleakClient], Any]] = getattr(bleak, LOOKUP)

    def lookup() -> tuple[type[BaseBleakClient], Any]:
        inner, backend_id = previous()
        bound = type("TracedBackend", (TracedBackend,), {"inner_class": inner, "tap": tap})
        return bound, backend_id

    setattr(bleak, LOOKUP, lookup)
    try:
        yield
    finally:
        if getattr(bleak, LOOKUP) is lookup:
            setattr(bleak, LOOKUP, previous)


@contextlib.contextmanager
def wire_tracing(url: str, profile: str, clock: Clock) -> Iterator[None]:
    """What an FTMS driver opens while connected: a traced link when a trace is on."""
    tap = tap_for("ftms", url, profile, clock)
    if tap is None:
        yield
        return
    with traced_bleak(tap):
        yield
    tap.event("closed")


__all__ = ["TracedBackend", "decode_declarations", "traced_bleak", "wire_tracing"]
