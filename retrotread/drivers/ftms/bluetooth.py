"""Bluetooth availability and scanning for FTMS machines (service 0x1826)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)
from bleak.uuids import normalize_uuid_str
from pyftms import MachineType, NotFitnessMachineError, get_machine_type_from_service_data

from retrotread.errors import DeviceUnavailable, Unavailable

FTMS_SERVICE = normalize_uuid_str("1826")
SCAN_TIMEOUT_S = 10.0


# -- Bluetooth availability ------------------------------------------------------------------


def bluetooth_unavailable(err: BaseException) -> DeviceUnavailable:
    """A clear error for "Bluetooth is off, missing, or not ours to use"."""
    if isinstance(err, BleakBluetoothNotAvailableError):
        reason = err.reason
        if reason is BleakBluetoothNotAvailableReason.POWERED_OFF:
            return DeviceUnavailable(
                Unavailable.ADAPTER_OFF, "turn Bluetooth on (e.g. `bluetoothctl power on`)"
            )
        if reason in (
            BleakBluetoothNotAvailableReason.DENIED_BY_USER,
            BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
            BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN,
        ):
            return DeviceUnavailable(Unavailable.NOT_PERMITTED, _PERMISSION_HINT)
        return DeviceUnavailable(Unavailable.ADAPTER_MISSING, f"no usable Bluetooth LE ({err})")
    if isinstance(err, PermissionError):
        return DeviceUnavailable(Unavailable.NOT_PERMITTED, _PERMISSION_HINT)
    if isinstance(err, FileNotFoundError):
        return DeviceUnavailable(
            Unavailable.ADAPTER_MISSING,
            "no Bluetooth service on this computer (BlueZ/D-Bus not reachable)",
        )
    if isinstance(err, BleakDBusError):
        if err.dbus_error.endswith(".NotReady"):
            return DeviceUnavailable(Unavailable.ADAPTER_OFF, "turn Bluetooth on and try again")
        if err.dbus_error.endswith((".NotPermitted", ".AccessDenied")):
            return DeviceUnavailable(Unavailable.NOT_PERMITTED, _PERMISSION_HINT)
        if err.dbus_error.endswith(".ServiceUnknown"):
            return DeviceUnavailable(
                Unavailable.ADAPTER_MISSING, "the Bluetooth service (bluetoothd) is not running"
            )
    return DeviceUnavailable(Unavailable.ADAPTER_MISSING, f"Bluetooth is not usable: {err}")


_PERMISSION_HINT = (
    "this user may not use Bluetooth (Linux: join the 'bluetooth' group; macOS: allow the "
    "terminal under Privacy & Security > Bluetooth)"
)
BLUETOOTH_ERRORS = (BleakError, OSError)


# -- scanning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sighting:
    """One FTMS machine heard while scanning."""

    device: BLEDevice
    advertisement: AdvertisementData
    machine_type: MachineType | None  # None: the advert's FTMS service data is unreadable

    @property
    def address(self) -> str:
        return self.device.address

    @property
    def name(self) -> str:
        return self.advertisement.local_name or self.device.name or self.device.address

    @property
    def rssi(self) -> int:
        return self.advertisement.rssi

    @property
    def is_treadmill(self) -> bool:
        return self.machine_type is not None and MachineType.TREADMILL in self.machine_type

    @property
    def kind(self) -> str:
        if self.machine_type is None:
            return "unknown"
        return " / ".join(
            (t.name or "?").lower().replace("_", " ") for t in MachineType if t in self.machine_type
        )


async def scan(
    seconds: float, *, until: Callable[[Sighting], bool] | None = None
) -> list[Sighting]:
    """Machines advertising FTMS, strongest signal first; stops early once ``until`` matches.

    Raises :class:`~retrotread.errors.DeviceUnavailable` when Bluetooth is off, missing or
    not permitted.
    """
    found: dict[str, Sighting] = {}
    matched = asyncio.Event()

    def heard(device: BLEDevice, advertisement: AdvertisementData) -> None:
        try:
            machine_type: MachineType | None = get_machine_type_from_service_data(advertisement)
        except NotFitnessMachineError:
            machine_type = None
        sighting = Sighting(device, advertisement, machine_type)
        found[device.address] = sighting
        if until is not None and until(sighting):
            matched.set()

    try:
        async with BleakScanner(heard, service_uuids=[FTMS_SERVICE]):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await matched.wait()
    except BLUETOOTH_ERRORS as err:
        raise bluetooth_unavailable(err) from err
    return sorted(found.values(), key=lambda s: (-s.rssi, s.name))


__all__ = [
    "BLUETOOTH_ERRORS",
    "FTMS_SERVICE",
    "SCAN_TIMEOUT_S",
    "Sighting",
    "bluetooth_unavailable",
    "scan",
]
