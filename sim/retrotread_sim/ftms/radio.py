"""The air in this process: simulated peripherals advertise here and centrals connect.

A :class:`Radio` holds :class:`SimPeripheral` objects (an FTMS server with an address, a name
and a signal strength). The bleak backends in :mod:`retrotread_sim.ftms.bleak_backend` scan
and connect through it, and :meth:`Radio.routed` makes every ``BleakClient`` and
``BleakScanner`` created meanwhile use them — including the ones pyftms creates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from retrotread_sim.ftms import codec
from retrotread_sim.ftms.gatt import AdapterState as AdapterState  # named here too
from retrotread_sim.ftms.gatt import Service
from retrotread_sim.ftms.server import Central, FtmsServer

DEFAULT_ADDRESS = "C0:FF:EE:18:26:01"


@dataclass(frozen=True)
class Advert:
    """What one advertising packet (with its scan response) carries."""

    local_name: str
    service_uuids: list[str]
    service_data: dict[str, bytes]
    tx_power: int | None
    rssi: int


class GattLink(Protocol):
    """One central's link to a peripheral's GATT server (what the bleak backend drives)."""

    open: bool

    def pair(self) -> None: ...
    def read(self, handle: int) -> bytes: ...
    def write(self, handle: int, data: bytes) -> None: ...
    def set_notify(self, handle: int, enabled: bool) -> None: ...
    def read_cccd(self, handle: int) -> bytes: ...
    def close(self) -> None: ...


class GattServer(Protocol):
    """A peripheral's attribute table and its links (an FTMS machine, a heart-rate strap)."""

    @property
    def services(self) -> Sequence[Service]: ...
    def connect(self, central: Central) -> GattLink: ...


class Peripheral(Protocol):
    """Anything that advertises on a radio and serves GATT to whoever connects."""

    @property
    def address(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def in_range(self) -> bool: ...
    @property
    def advertising(self) -> bool: ...
    @property
    def server(self) -> GattServer: ...
    def advert(self) -> Advert: ...


class SimPeripheral:
    """A simulated BLE peripheral: an FTMS server that advertises on a radio."""

    def __init__(
        self,
        server: FtmsServer,
        *,
        address: str = DEFAULT_ADDRESS,
        name: str | None = None,
        rssi: int = -58,
        max_connections: int = 1,
        machine_type: codec.MachineType = codec.MachineType.TREADMILL,
    ) -> None:
        self.server = server
        self.address = address.upper()
        self.name = name or server.machine.spec.name
        self.rssi = rssi
        self.max_connections = max_connections
        self.machine_type = machine_type
        #: Test API: False takes the peripheral out of range (no adverts, connects fail).
        self.in_range = True

    @property
    def advertising(self) -> bool:
        # Like most FTMS machines, it stops advertising once its connection slots are taken.
        server = self.server
        return self.in_range and server.reachable and len(server.connections) < self.max_connections

    def advert(self) -> Advert:
        return Advert(
            local_name=self.name,
            service_uuids=[codec.FTMS_SERVICE],
            service_data={codec.FTMS_SERVICE: codec.encode_service_data(self.machine_type)},
            tx_power=None,
            rssi=self.rssi,
        )


class Radio:
    """Peripherals in range of this process's simulated Bluetooth adapter."""

    def __init__(self) -> None:
        self.peripherals: dict[str, Peripheral] = {}
        #: Test API: the adapter's state (off, missing, denied) as a scanner meets it.
        self.adapter = AdapterState.READY

    def add[P: Peripheral](self, peripheral: P) -> P:
        self.peripherals[peripheral.address] = peripheral
        return peripheral

    def remove(self, address: str) -> None:
        self.peripherals.pop(address.upper(), None)

    def find(self, address: str) -> Peripheral | None:
        """The peripheral at ``address`` if it is in range, whether or not it advertises."""
        peripheral = self.peripherals.get(address.upper())
        if peripheral is None or not peripheral.in_range:
            return None
        return peripheral

    def advertising(self) -> list[Peripheral]:
        return [p for p in self.peripherals.values() if p.advertising]

    @contextmanager
    def routed(self) -> Iterator[Radio]:
        """While open, ``BleakClient`` and ``BleakScanner`` without ``backend=`` use this radio.

        See :func:`retrotread_sim.ftms.bleak_backend.route_bleak` for how, and why this is the
        seam (pyftms does not pass ``backend=`` on to bleak).
        """
        from retrotread_sim.ftms.bleak_backend import route_bleak

        with route_bleak(self):
            yield self
