"""What the start screen offers as devices: the simulator, the device profiles, scan results.

Everything here comes from the driver registry (:mod:`retrotread.drivers.registry`): the
simulator is offered where it is installed, and a Scan button where any installed driver can
scan — built-in (``ble://``) or from another package. A driver is imported on the first scan.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from retrotread.drivers.registry import (
    BUILT_IN,
    DEFAULT_DEVICE,
    DRIVERS,
    DriverEntry,
    driver_entries,
)
from retrotread.errors import RetrotreadError
from retrotread.profiles import all_profiles


@dataclass(frozen=True)
class DeviceChoice:
    label: str
    url: str
    detail: str = ""


Scanner = Callable[[], Awaitable[Sequence[DeviceChoice]]]

SCAN_SECONDS = 5.0


def offered_devices() -> list[DeviceChoice]:
    """The simulator first, then each device profile played by the simulator (none where the
    simulator is not installed: the operator types a URL or scans)."""
    if not DRIVERS["sim"].available:
        return []
    choices = [DeviceChoice("Simulator", DEFAULT_DEVICE, "the in-process simulated treadmill")]
    for profile in all_profiles():
        if profile.protocol == "sim":
            continue
        choices.append(
            DeviceChoice(
                f"Simulated {profile.name}",
                f"sim://?profile={profile.name}",
                profile.description,
            )
        )
    return choices


def choice_from_found(found: Any, scheme: str) -> DeviceChoice | None:
    """A scan result as a choice: it has a ``url``, or an ``address`` to open with ``scheme``.

    Machines the scan identified as something other than a treadmill are left out.
    """
    if getattr(found, "is_treadmill", True) is False and getattr(found, "kind", "") != "unknown":
        return None
    url = getattr(found, "url", None)
    address = getattr(found, "address", None)
    if not isinstance(url, str) and isinstance(address, str):
        url = f"{scheme}://{address}"
    if not isinstance(url, str) or "://" not in url:
        return None
    name = getattr(found, "name", None) or address or url
    rssi = getattr(found, "rssi", None)
    detail = f"signal {rssi} dBm" if isinstance(rssi, int) else ""
    return DeviceChoice(str(name), url, detail)


def scanning_entries() -> list[DriverEntry]:
    """Installed drivers that can scan: built-ins that say so (their extra installed) and
    third-party drivers that offer ``scan`` (loaded to ask; one that fails to load is left
    out here and says why when its URL is opened)."""
    found = []
    for entry in driver_entries().values():
        if not entry.available:
            continue
        if entry.scan_target is not None:
            found.append(entry)
            continue
        if entry.origin == BUILT_IN:
            continue  # a built-in that scans says so in the registry
        try:
            if entry.scanner() is not None:
                found.append(entry)
        except RetrotreadError:
            continue
    return found


def find_scanner(seconds: float = SCAN_SECONDS) -> Scanner | None:
    """A :data:`Scanner` over every driver's own scan, or None where no driver can scan."""
    entries = scanning_entries()
    return scanner_over(entries, seconds) if entries else None


def scanner_over(entries: Sequence[DriverEntry], seconds: float) -> Scanner:
    """One scan over these drivers' scans, their finds as choices."""

    async def scan_one(entry: DriverEntry) -> list[DeviceChoice]:
        function = entry.scanner()
        if function is None:
            return []
        result: Any = function(seconds)
        if inspect.isawaitable(result):
            result = await result
        found: Iterable[Any] = result or ()
        return [
            choice
            for item in found
            if (choice := choice_from_found(item, entry.scheme)) is not None
        ]

    async def scan() -> list[DeviceChoice]:
        if len(entries) == 1:  # one scanner: its error is the answer (Bluetooth is off...)
            return await scan_one(entries[0])
        results = await asyncio.gather(*map(scan_one, entries), return_exceptions=True)
        choices = [choice for result in results if isinstance(result, list) for choice in result]
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures and not choices and len(failures) == len(results):
            raise failures[0]
        return choices

    return scan
