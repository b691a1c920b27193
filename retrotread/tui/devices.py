"""What the start screen offers as devices: the simulator, the bundled profiles, scan results.

Scanning belongs to the drivers; the console only asks. :func:`find_scanner` looks for a scan
function in the installed drivers at run time, so the console works (without a Scan button)
where no scanner exists, and picks one up as soon as a driver provides it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from retrotread.drivers.registry import DEFAULT_DEVICE
from retrotread.profiles import bundled_profiles


@dataclass(frozen=True)
class DeviceChoice:
    label: str
    url: str
    detail: str = ""


Scanner = Callable[[], Awaitable[Sequence[DeviceChoice]]]

SCAN_SECONDS = 5.0


@dataclass(frozen=True)
class ScanEntry:
    """Where a driver offers ``scan(seconds)``, and the URL scheme its results open with."""

    module: str
    function: str
    scheme: str


#: Tried in order; the first that exists is used.
SCAN_ENTRY_POINTS: tuple[ScanEntry, ...] = (
    ScanEntry("retrotread.drivers.ftms_ble", "scan", "ble"),
)


def offered_devices() -> list[DeviceChoice]:
    """The simulator first, then each bundled profile played by the simulator."""
    choices = [DeviceChoice("Simulator", DEFAULT_DEVICE, "the in-process simulated treadmill")]
    for profile in bundled_profiles():
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


def find_scanner(seconds: float = SCAN_SECONDS) -> Scanner | None:
    """A :data:`Scanner` over the drivers' own scan, or None where no driver can scan.

    Only looks for the module here; it is imported (with Bluetooth libraries) on first scan.
    """
    for entry in SCAN_ENTRY_POINTS:
        try:
            available = importlib.util.find_spec(entry.module) is not None
        except ImportError:
            available = False
        if available:
            return _scanner(entry, seconds)
    return None


def _scanner(entry: ScanEntry, seconds: float) -> Scanner:
    async def scan() -> list[DeviceChoice]:
        function: Callable[..., Any] = getattr(
            importlib.import_module(entry.module), entry.function
        )
        result = function(seconds)
        if inspect.isawaitable(result):
            result = await result
        found: Iterable[Any] = result or ()
        return [
            choice
            for item in found
            if (choice := choice_from_found(item, entry.scheme)) is not None
        ]

    return scan
