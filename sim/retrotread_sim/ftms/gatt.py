"""A small GATT model: services, characteristics with handles, and ATT errors.

It knows nothing about bleak; the bleak backend (:mod:`retrotread_sim.ftms.bleak_backend`)
translates it into bleak's objects, and ATT errors into ``BleakGATTProtocolError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field


class AdapterState(enum.Enum):
    """The local Bluetooth adapter, as a scanner or client on this radio finds it."""

    READY = "ready"
    OFF = "powered off"
    MISSING = "no adapter"
    DENIED = "permission denied"


class AttError(enum.IntEnum):
    """ATT error codes the simulated server answers with (Core spec Vol 3 Part F 3.4.1.1)."""

    READ_NOT_PERMITTED = 0x02
    WRITE_NOT_PERMITTED = 0x03
    INSUFFICIENT_AUTHENTICATION = 0x05
    REQUEST_NOT_SUPPORTED = 0x06
    INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
    INSUFFICIENT_ENCRYPTION = 0x0F
    CCCD_IMPROPERLY_CONFIGURED = 0xFD
    PROCEDURE_ALREADY_IN_PROGRESS = 0xFE


class GattError(Exception):
    """The server answered a request with an ATT error."""

    def __init__(self, code: AttError, detail: str) -> None:
        super().__init__(f"ATT error {code:#04x} ({code.name.lower()}): {detail}")
        self.code = code
        self.detail = detail


Reader = Callable[[], bytes]


@dataclass
class Characteristic:
    uuid: str
    properties: tuple[str, ...]  # bleak's names: "read", "write", "notify", "indicate"
    read: Reader | None = None
    handle: int = 0

    @property
    def notifies(self) -> bool:
        return "notify" in self.properties or "indicate" in self.properties

    @property
    def cccd_handle(self) -> int:
        """The Client Characteristic Configuration descriptor sits right after the value."""
        return self.handle + 1


@dataclass
class Service:
    uuid: str
    characteristics: list[Characteristic] = field(default_factory=list)
    handle: int = 0


def assign_handles(services: list[Service]) -> dict[int, Characteristic]:
    """Number the attributes the way a GATT server lays them out; returns value handles.

    Each service takes a declaration handle; each characteristic a declaration and a value
    handle, plus a CCCD handle if it notifies or indicates.
    """
    handle = 1
    by_handle: dict[int, Characteristic] = {}
    for service in services:
        service.handle = handle
        handle += 1
        for characteristic in service.characteristics:
            characteristic.handle = handle + 1  # declaration first, then the value
            by_handle[characteristic.handle] = characteristic
            handle += 3 if characteristic.notifies else 2
    return by_handle
