"""The simulated treadmill over Bluetooth LE: an FTMS GATT server on an in-process radio.

* :mod:`~retrotread_sim.ftms.codec` — the treadmill's side of the FTMS wire format;
* :mod:`~retrotread_sim.ftms.gatt` — services, characteristics, handles, ATT errors;
* :mod:`~retrotread_sim.ftms.server` — :class:`FtmsServer`, the machine behind FTMS;
* :mod:`~retrotread_sim.ftms.radio` — :class:`Radio`, where simulated peripherals advertise;
* :mod:`~retrotread_sim.ftms.bleak_backend` — bleak client and scanner backends on a radio.

Typical use::

    machine = SimTreadmill()
    radio = Radio()
    peripheral = radio.add(SimPeripheral(FtmsServer(machine)))
    with radio.routed():
        ...  # BleakScanner / BleakClient / pyftms now reach the simulated treadmill

The bleak backends need bleak (the ``ble`` extra); the server, codec and radio do not.
"""

from retrotread_sim.ftms.codec import MachineType, OpCode, ResultCode, StatusCode
from retrotread_sim.ftms.gatt import AttError, GattError
from retrotread_sim.ftms.radio import DEFAULT_ADDRESS, AdapterState, Advert, Radio, SimPeripheral
from retrotread_sim.ftms.server import (
    PERSONALITIES,
    QUIRKS,
    ControlPointWrite,
    FtmsOptions,
    FtmsServer,
    personality,
    with_quirks,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "PERSONALITIES",
    "QUIRKS",
    "AdapterState",
    "Advert",
    "AttError",
    "ControlPointWrite",
    "FtmsOptions",
    "FtmsServer",
    "GattError",
    "MachineType",
    "OpCode",
    "Radio",
    "ResultCode",
    "SimPeripheral",
    "StatusCode",
    "personality",
    "with_quirks",
]
