"""The device layer: one :class:`Treadmill` interface, drivers chosen by URL scheme.

Each name loads with its module on first use, so reading the registry (the command line's
``--device`` default) does not load the drivers' base and everything it brings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrotread.drivers.base import (
        BeltStatus,
        Capabilities,
        MachineEvent,
        MachineEventKind,
        Range,
        Report,
        Telemetry,
        Treadmill,
    )
    from retrotread.drivers.registry import (
        DEFAULT_DEVICE,
        DRIVERS,
        Driver,
        find_driver,
        open_treadmill,
    )
    from retrotread.drivers.url import DeviceUrl

_MODULES = {
    "BeltStatus": "base",
    "Capabilities": "base",
    "MachineEvent": "base",
    "MachineEventKind": "base",
    "Range": "base",
    "Report": "base",
    "Telemetry": "base",
    "Treadmill": "base",
    "DEFAULT_DEVICE": "registry",
    "DRIVERS": "registry",
    "Driver": "registry",
    "find_driver": "registry",
    "open_treadmill": "registry",
    "DeviceUrl": "url",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"retrotread.drivers.{_MODULES[name]}"), name)


__all__ = [
    "DEFAULT_DEVICE",
    "DRIVERS",
    "BeltStatus",
    "Capabilities",
    "DeviceUrl",
    "Driver",
    "MachineEvent",
    "MachineEventKind",
    "Range",
    "Report",
    "Telemetry",
    "Treadmill",
    "find_driver",
    "open_treadmill",
]
