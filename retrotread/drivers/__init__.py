"""The device layer: one :class:`Treadmill` interface, drivers chosen by URL scheme."""

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
from retrotread.drivers.registry import DEFAULT_DEVICE, DRIVERS, driver_class, open_treadmill
from retrotread.drivers.url import DeviceUrl

__all__ = [
    "DEFAULT_DEVICE",
    "DRIVERS",
    "BeltStatus",
    "Capabilities",
    "DeviceUrl",
    "MachineEvent",
    "MachineEventKind",
    "Range",
    "Report",
    "Telemetry",
    "Treadmill",
    "driver_class",
    "open_treadmill",
]
