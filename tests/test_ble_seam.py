"""Canary: how the simulator is plugged under bleak and pyftms, and the pyftms hooks we use.

If a new bleak, bleak-retry-connector or pyftms release moves one of these seams, these tests
fail first, with a message that says what moved and where the fix goes:

* the routing seam: ``retrotread_sim/ftms/bleak_backend.py`` (``route_bleak``);
* the pyftms hooks: ``retrotread/drivers/ftms/client.py`` (``FtmsClient``, ``ControlWatch``).
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import bleak
import bleak_retry_connector
import pyftms
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from pyftms.client.backends import MachineController
from pyftms.models import ControlCode, MachineStatusCode

from retrotread.clock import run
from retrotread.drivers.ftms_ble import _ControlWatch, _PyftmsTreadmill
from retrotread_sim import SimTreadmill
from retrotread_sim.ftms import FtmsServer, Radio, SimPeripheral
from retrotread_sim.ftms.bleak_backend import BACKEND_ID, SimBleakClient, SimBleakScanner

SEAM = "retrotread_sim/ftms/bleak_backend.py (route_bleak)"
HOOKS = "retrotread/drivers/ftms/client.py (FtmsClient, ControlWatch)"


def test_installed_versions_are_the_ones_checked() -> None:
    """Not a pin: a reminder of what this canary was last green with."""
    assert version("bleak").split(".")[0] == "3", f"bleak {version('bleak')}: re-check {SEAM}"
    assert version("pyftms").startswith("0.4."), f"pyftms {version('pyftms')}: re-check {HOOKS}"


def test_bleak_looks_up_its_backends_by_module_global_at_call_time() -> None:
    for cls, name in (
        (BleakClient, "get_platform_client_backend_type"),
        (BleakScanner, "get_platform_scanner_backend_type"),
    ):
        assert hasattr(bleak, name), f"bleak no longer has {name}: the seam in {SEAM} moved"
        source = inspect.getsource(cls.__init__)
        assert f"{name}()" in source, (
            f"{cls.__name__}.__init__ no longer calls {name}() when backend= is not given: "
            f"the seam in {SEAM} moved"
        )


def test_routing_gives_bleak_the_simulated_backends_and_restores_the_platform_ones() -> None:
    radio = Radio()
    device = BLEDevice("C0:FF:EE:00:00:01", "x", {})
    platform_client = bleak.get_platform_client_backend_type
    with radio.routed():
        client = BleakClient(device)
        scanner = BleakScanner()
        assert client.backend_id == BACKEND_ID, f"BleakClient did not pick the route: {SEAM}"
        assert scanner.backend_id == BACKEND_ID, f"BleakScanner did not pick the route: {SEAM}"
        assert bleak.get_platform_client_backend_type() == (SimBleakClient, BACKEND_ID)
        assert bleak.get_platform_scanner_backend_type() == (SimBleakScanner, BACKEND_ID)
    assert bleak.get_platform_client_backend_type is platform_client


def test_bleak_retry_connector_leaves_bluez_alone_for_devices_without_a_path() -> None:
    device = BLEDevice("C0:FF:EE:00:00:01", "x", {})
    assert bleak_retry_connector.bluez.path_from_ble_device(device) is None

    async def main() -> None:
        assert await bleak_retry_connector.get_connected_devices(device) == []

    run(main(), virtual=True)


def test_pyftms_runs_over_the_route_end_to_end() -> None:
    async def main() -> None:
        machine = SimTreadmill()
        server = FtmsServer(machine)
        radio = Radio()
        peripheral = radio.add(SimPeripheral(server))
        with radio.routed():
            device = BLEDevice(peripheral.address, peripheral.name, {})
            client = pyftms.get_client(device, pyftms.MachineType.TREADMILL)
            await client.connect()
            assert client.device_info["manufacturer"] == "retrotread-sim", (
                f"pyftms did not reach the simulator: {SEAM}"
            )
            assert await client.start_resume() == pyftms.ResultCode.SUCCESS
            await client.disconnect()
        assert [w.hex for w in server.writes] == ["00", "07"]
        server.close()

    run(main(), virtual=True)


def test_pyftms_hooks_the_driver_relies_on() -> None:
    assert hasattr(pyftms.Treadmill, "_write_command"), f"pyftms renamed _write_command: {HOOKS}"
    assert "_controller" in inspect.getsource(pyftms.FitnessMachine.__init__), (
        f"pyftms no longer builds self._controller: {HOOKS}"
    )
    subscribe = inspect.getsource(MachineController.subscribe)
    assert "self._on_machine_status" in subscribe, (
        f"pyftms no longer routes Machine Status through _on_machine_status: {HOOKS}"
    )
    assert "_auth" in inspect.getsource(MachineController.write_command), (
        f"pyftms no longer tracks control in _auth: {HOOKS}"
    )
    assert ControlCode.REQUEST_CONTROL == 0 and MachineStatusCode.LOST_CONTROL == 0xFF
    assert issubclass(_PyftmsTreadmill, pyftms.Treadmill)
    assert issubclass(_ControlWatch, MachineController)
