"""pyftms's treadmill client, extended where its public API stops.

Four small extensions, by subclassing: an explicit Request Control, a hook on Machine Status
``FF`` (which pyftms handles silently), and pairing and a vendor write (quirk
``unlock_write``) over pyftms's own ``BleakClient`` (``_cli``). ``tests/test_ble_seam.py``
fails loudly if one moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from pyftms import ResultCode
from pyftms import Treadmill as PyftmsTreadmill
from pyftms.client.backends import MachineController
from pyftms.client.const import CONTROL_POINT_UUID
from pyftms.models import ControlCode, MachineStatusCode

#: Machine Status "Control Permission Lost".
_LOST_CONTROL = bytes([MachineStatusCode.LOST_CONTROL])


class ControlWatch(MachineController):  # type: ignore[misc]  # pyftms ships no type hints
    """pyftms's control point handler, telling us when Machine Status reports ``FF``.

    pyftms 0.4.15 cannot handle Control Permission Lost itself: it decodes the op code as a
    u8 whose 0xFF means "no value", and then fails with ``KeyError`` in the notification
    callback. So ``FF`` is taken here, before pyftms sees it.
    """

    def __init__(self, callback: Callable[[Any], None], on_control_lost: Callable[[], None]):
        super().__init__(callback)
        self._on_control_lost = on_control_lost

    def _on_machine_status(self, characteristic: Any, data: bytearray) -> None:
        if data[:1] == _LOST_CONTROL:
            self._auth = False  # what pyftms means to do: request control before the next write
            self._on_control_lost()
            return
        super()._on_machine_status(characteristic, data)


class FtmsClient(PyftmsTreadmill):  # type: ignore[misc]  # pyftms ships no type hints
    """pyftms's treadmill client, plus an explicit Request Control and a control-lost hook."""

    def __init__(
        self,
        device: BLEDevice,
        advertisement: AdvertisementData | None,
        *,
        timeout: float,
        on_ftms_event: Callable[[Any], None],
        on_disconnect: Callable[[Any], None],
        on_control_lost: Callable[[], None],
    ) -> None:
        super().__init__(
            device,
            advertisement,
            timeout=timeout,
            on_ftms_event=on_ftms_event,
            on_disconnect=on_disconnect,
        )
        self._controller = ControlWatch(self._on_event, on_control_lost)

    async def request_control(self) -> ResultCode:
        result: ResultCode = await self._write_command(ControlCode.REQUEST_CONTROL)
        return result

    async def pair_link(self) -> None:
        """Pair with the machine over the current link (bleak's ``BleakClient.pair``)."""
        await self._cli.pair()

    async def write_vendor(self, uuid: str, data: bytes) -> bool:
        """Write ``data`` to a characteristic outside FTMS (pyftms's ``BleakClient``); False
        if the machine has none with this UUID (discovered only while every service is:
        :func:`retrotread.drivers.ftms.unlock.every_service_discovered`)."""
        characteristic = self._cli.services.get_characteristic(uuid)
        if characteristic is None:
            return False
        response = "write" in characteristic.properties  # else write without response
        await self._cli.write_gatt_char(characteristic, data, response=response)
        return True

    @property
    def has_control_point(self) -> bool:
        """Whether the machine has an FTMS control point (some are read-only)."""
        return self._cli.services.get_characteristic(CONTROL_POINT_UUID) is not None


async def request_control(client: FtmsClient) -> ResultCode:
    return await client.request_control()
