"""A bleak client backend and scanner backend whose "Bluetooth" is a :class:`Radio`.

With them, bleak — and everything built on it (bleak-retry-connector, pyftms) — talks to the
simulated treadmill's GATT server unmodified.

How they are plugged into bleak (the seam)
------------------------------------------
``BleakClient(...)`` and ``BleakScanner(...)`` accept ``backend=``, but pyftms builds its
``BleakClient`` itself (through bleak-retry-connector's ``establish_connection``) and nests
its extra keyword arguments one level down, so a ``backend=`` handed to pyftms never reaches
bleak. When no ``backend=`` is given, bleak asks ``bleak.get_platform_client_backend_type()``
and ``bleak.get_platform_scanner_backend_type()`` — module globals looked up at call time.
:func:`route_bleak` replaces those two for as long as a radio is routed, and puts the
originals back when the last routed radio closes. Nothing in bleak, bleak-retry-connector or
pyftms is modified. ``tests/test_ble_seam.py`` fails loudly if a release moves this seam.

Devices are handed out as ``BLEDevice(address, name, details={})``: without a ``"path"`` in
its details, bleak-retry-connector never turns to BlueZ/D-Bus for them.

Timing: notifications and the disconnected callback are delivered with ``loop.call_soon`` and
adverts are repeated with ``asyncio.sleep``, so everything follows the event loop's clock —
real on a normal loop, virtual on a virtual-time loop. Nothing here sleeps in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import bleak
from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
)

from retrotread_sim.ftms import codec
from retrotread_sim.ftms.gatt import AdapterState, AttError, GattError

if TYPE_CHECKING:  # the radio routes bleak here: only its types are needed (no import circle)
    from retrotread_sim.ftms.radio import GattLink, Peripheral, Radio

log = logging.getLogger(__name__)

#: The backend id bleak reports (``BleakClient.backend_id``) for clients on a simulated radio.
BACKEND_ID = "retrotread-sim"
#: How often a simulated peripheral advertises while a scanner listens.
ADVERTISING_INTERVAL_S = 0.1
#: The ATT MTU of a simulated link (the BLE minimum; notifications carry MTU - 3 bytes).
ATT_MTU = 23

_UNAVAILABLE = {
    AdapterState.OFF: (
        "No powered Bluetooth adapters found. Turn on Bluetooth and try again.",
        BleakBluetoothNotAvailableReason.POWERED_OFF,
    ),
    AdapterState.MISSING: (
        "No Bluetooth adapters found.",
        BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
    ),
    AdapterState.DENIED: (
        "Bluetooth access denied.",
        BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
    ),
}

# -- routing: which radios bleak's platform lookups lead to -------------------------------------

_routed: list[Radio] = []
_originals: dict[str, object] = {}


def _client_lookup() -> tuple[type[BaseBleakClient], str]:
    return SimBleakClient, BACKEND_ID


def _scanner_lookup() -> tuple[type[BaseBleakScanner], str]:
    return SimBleakScanner, BACKEND_ID


#: The two functions bleak calls when no ``backend=`` is given (the seam).
_LOOKUPS: dict[str, Callable[[], tuple[type[Any], str]]] = {
    "get_platform_client_backend_type": _client_lookup,
    "get_platform_scanner_backend_type": _scanner_lookup,
}


@contextlib.contextmanager
def route_bleak(radio: Radio) -> Iterator[Radio]:
    """Make bleak's platform backend lookups return the simulated backends while open.

    Radios may be routed together (nested or from concurrent tasks): a client connects to the
    first routed radio, newest first, that has its address in range; a scanner hears them all.
    """
    _routed.append(radio)
    if len(_routed) == 1:
        for name, lookup in _LOOKUPS.items():
            _originals[name] = getattr(bleak, name)
            setattr(bleak, name, lookup)
    try:
        yield radio
    finally:
        _routed.remove(radio)
        if not _routed:
            for name in _LOOKUPS:
                setattr(bleak, name, _originals.pop(name))


def routed_radios() -> list[Radio]:
    """The radios bleak is routed to now, newest first."""
    return list(reversed(_routed))


def _adapter_check(radios: list[Radio]) -> None:
    for radio in radios:
        if radio.adapter is not AdapterState.READY:
            message, reason = _UNAVAILABLE[radio.adapter]
            raise BleakBluetoothNotAvailableError(message, reason)


# -- the client backend -------------------------------------------------------------------------


class SimBleakClient(BaseBleakClient):
    """bleak's view of one link to a simulated peripheral."""

    #: Set on a subclass to bind it to one radio (for ``BleakClient(..., backend=...)``).
    radio: ClassVar[Radio | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        services: set[str] | None = None,
        **kwargs: Any,  # bluez=, winrt=, pair=, and whatever a wrapper adds: all ignored
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._wanted_services = services
        self._peripheral: Peripheral | None = None
        self._connection: GattLink | None = None
        self._callbacks: dict[int, NotifyCallback] = {}

    def _radios(self) -> list[Radio]:
        return [self.radio] if self.radio is not None else routed_radios()

    # -- the Central protocol: what the server calls ------------------------------------------

    def deliver(self, handle: int, data: bytes) -> None:
        connection = self._connection
        callback = self._callbacks.get(handle)
        if callback is None or connection is None:
            return

        def arrive() -> None:
            if self._connection is connection:  # nothing arrives over a link that is gone
                callback(bytearray(data))

        asyncio.get_running_loop().call_soon(arrive)

    def dropped(self) -> None:
        self._forget()
        asyncio.get_running_loop().call_soon(self._notify_disconnected)

    # -- connectivity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._peripheral.name if self._peripheral else self.address

    @property
    def mtu_size(self) -> int:
        return ATT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._connection.open

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        radios = self._radios()
        _adapter_check(radios)
        peripheral = next(
            (p for r in radios if (p := r.find(self.address)) is not None and p.advertising),
            None,
        )
        if peripheral is None:
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found."
            )
        self._peripheral = peripheral
        self._connection = peripheral.server.connect(self)
        self._callbacks = {}
        self.services = self._discover(peripheral)
        log.debug("connected to simulated %s (%s)", peripheral.name, peripheral.address)

    async def disconnect(self) -> None:
        if self._connection is None:
            return
        self._connection.close()
        self._forget()
        self._notify_disconnected()

    def _forget(self) -> None:
        self._connection = None
        self._callbacks = {}

    def _notify_disconnected(self) -> None:
        # Fired on every disconnect, asked for or not: pyftms resets and re-subscribes on it.
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair (bond) with the machine: the link is encrypted from now on, and so is every
        later link to it (the bond is kept), as BlueZ and Core Bluetooth do."""
        with _att_errors():
            self._link().pair()

    async def unpair(self) -> None:
        """Nothing to forget."""

    def _discover(self, peripheral: Peripheral) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        wanted = self._wanted_services
        for service in peripheral.server.services:
            if wanted is not None and service.uuid not in wanted:
                continue
            bleak_service = BleakGATTService(service, service.handle, service.uuid)
            collection.add_service(bleak_service)
            for characteristic in service.characteristics:
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    characteristic.uuid,
                    list(characteristic.properties),  # type: ignore[arg-type]
                    lambda: ATT_MTU - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                if characteristic.notifies:
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            None,
                            characteristic.cccd_handle,
                            codec.CLIENT_CHARACTERISTIC_CONFIGURATION,
                            bleak_characteristic,
                        )
                    )
        return collection

    # -- I/O ----------------------------------------------------------------------------------

    def _link(self) -> GattLink:
        if self._connection is None or not self._connection.open:
            raise BleakError("Not connected")
        return self._connection

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        with _att_errors():
            return bytearray(self._link().read(characteristic.handle))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        link = self._link()
        if descriptor.uuid != codec.CLIENT_CHARACTERISTIC_CONFIGURATION:
            raise BleakGATTProtocolError(AttError.READ_NOT_PERMITTED)
        with _att_errors():
            return bytearray(link.read_cccd(descriptor.characteristic_handle))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        with _att_errors():
            self._link().write(characteristic.handle, bytes(data))

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        self._link()
        raise BleakGATTProtocolError(AttError.WRITE_NOT_PERMITTED)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        link = self._link()
        with _att_errors():
            link.set_notify(characteristic.handle, True)
        self._callbacks[characteristic.handle] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        link = self._link()
        with _att_errors():
            link.set_notify(characteristic.handle, False)
        self._callbacks.pop(characteristic.handle, None)


@contextlib.contextmanager
def _att_errors() -> Iterator[None]:
    try:
        yield
    except GattError as err:
        raise BleakGATTProtocolError(err.code) from err


# -- the scanner backend ------------------------------------------------------------------------


class SimBleakScanner(BaseBleakScanner):
    """Hears the adverts of every simulated peripheral on the routed radios."""

    radio: ClassVar[Radio | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._listening: asyncio.Task[None] | None = None

    def _radios(self) -> list[Radio]:
        return [self.radio] if self.radio is not None else routed_radios()

    async def start(self) -> None:
        _adapter_check(self._radios())
        self.seen_devices = {}
        self._listening = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None

    async def _listen(self) -> None:
        while True:
            for radio in self._radios():
                for peripheral in radio.advertising():
                    self._hear(peripheral)
            await asyncio.sleep(ADVERTISING_INTERVAL_S)

    def _hear(self, peripheral: Peripheral) -> None:
        advert = peripheral.advert()
        data = AdvertisementData(
            local_name=advert.local_name,
            manufacturer_data={},
            service_data=dict(advert.service_data),
            service_uuids=list(advert.service_uuids),
            tx_power=advert.tx_power,
            rssi=advert.rssi,
            platform_data=(BACKEND_ID,),
        )
        if not self.is_allowed_uuid(data.service_uuids):
            return
        device = self.create_or_update_device(
            peripheral.address, peripheral.address, peripheral.name, {}, data
        )
        self.call_detection_callbacks(device, data)
