"""``retrotread scan``: treadmills found by what they advertise, serial ports beside them.

The adverts are the simulator's, heard through bleak's own ``BleakScanner`` over the
simulator's scanner backend (bleak unmodified).
"""

from __future__ import annotations

import pytest
from serial.tools import list_ports

from retrotread.cli import main
from retrotread.clock import run
from retrotread.commands.scan import (
    Found,
    discover,
    quirk_options,
    scan_bluetooth,
    scan_lines,
    serial_lines,
    serial_ports,
)
from retrotread_sim import SimTreadmill
from retrotread_sim.ftms import Advert, FtmsServer, MachineType, Radio, SimPeripheral


class ServiceDataOnly(SimPeripheral):
    """A machine that advertises FTMS service data but lists no service UUID (or nothing of
    FTMS at all, with ``ftms=False``)."""

    def __init__(self, *args: object, ftms: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ftms = ftms

    def advert(self) -> Advert:
        advert = super().advert()
        data = advert.service_data if self.ftms else {}
        return Advert(advert.local_name, [], data, advert.tx_power, advert.rssi)


def machines(*peripherals: tuple[str, str, MachineType, bool]) -> list[Found]:
    """Scan a radio holding (address, name, type, lists-the-UUID) peripherals for 2 s."""

    async def listen() -> list[Found]:
        radio = Radio()
        for address, name, kind, listed in peripherals:
            server = FtmsServer(SimTreadmill())
            cls = SimPeripheral if listed else ServiceDataOnly
            radio.add(cls(server, address=address, name=name, machine_type=kind))
        radio.add(
            ServiceDataOnly(FtmsServer(SimTreadmill()), address="AA:00", name="Strap", ftms=False)
        )
        with radio.routed():
            return await scan_bluetooth(2.0)

    return run(listen(), virtual=True)


def test_a_treadmill_is_found_by_its_service_data_alone() -> None:
    found = machines(("C0:FF:EE:00:00:01", "Mystery Walker 3000", MachineType.TREADMILL, False))
    (walker,) = found  # the strap, advertising no FTMS, is not a fitness machine
    assert walker.name == "Mystery Walker 3000"
    assert walker.kind == "treadmill" and walker.is_treadmill
    assert walker.profile == "generic-ftms" and not walker.recognised
    assert walker.url == "ble://C0:FF:EE:00:00:01"


def test_an_unknown_treadmill_gets_the_generic_profile_and_the_quirks_to_try() -> None:
    found = machines(
        ("C0:FF:EE:00:00:01", "Mystery Walker 3000", MachineType.TREADMILL, True),
        ("C0:FF:EE:00:00:02", "Rowing Thing", MachineType.ROWER, True),
    )
    lines = scan_lines(found, 2.0, show_all=False)
    text = "\n".join(lines)
    assert "Mystery Walker 3000" in text and "Rowing Thing" not in text
    hint = next(line for line in lines if "not in the profile catalogue" in line)
    assert "generic-ftms" in hint and "retrotread probe ble://C0:FF:EE:00:00:01" in hint
    options = quirk_options()
    assert {"request_control_each_command", "speed_field_mph"} <= set(options)
    assert all(f"?{name}=" in hint for name in options)
    everything = "\n".join(scan_lines(found, 2.0, show_all=True))
    assert "Rowing Thing" in everything and "rower" in everything


def test_a_machine_of_unknown_type_is_listed_with_what_to_try() -> None:
    found = machines(("C0:FF:EE:00:00:03", "Vague", MachineType(0), True))
    (vague,) = found
    assert vague.kind == "unknown" and vague.is_treadmill is None
    text = "\n".join(scan_lines(found, 2.0, show_all=False))
    assert "without saying what machine it is" in text


def test_serial_ports_are_listed_beside_the_radio() -> None:
    ports = serial_ports()
    devices = sorted({p.device for p in list_ports.comports()})
    assert sorted({p.address for p in ports}) == devices
    assert all(p.url.startswith(f"serial://{p.address}?protocol=") for p in ports)
    text = "\n".join(serial_lines(ports))
    for device in devices:
        assert f"serial://{device}?protocol=csafe" in text
        assert f"serial://{device}?protocol=trackmaster" in text


def test_discover_offers_treadmills_and_serial_ports_not_rowers() -> None:
    async def listen() -> list[Found]:
        radio = Radio()
        radio.add(SimPeripheral(FtmsServer(SimTreadmill()), address="C0:01", name="Walker"))
        radio.add(
            SimPeripheral(
                FtmsServer(SimTreadmill()),
                address="C0:02",
                name="Rower",
                machine_type=MachineType.ROWER,
            )
        )
        with radio.routed():
            return await discover(1.0)

    found = run(listen(), virtual=True)
    assert [f.name for f in found if f.kind != "serial"] == ["Walker"]
    assert [f.url for f in found if f.kind == "serial"] == [p.url for p in serial_ports()]


def test_scan_command_on_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--simulator", "--timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert "RetroTread SIM-1" in out and "ble://C0:FF:EE:18:26:01" in out
    assert "not in the profile catalogue" in out  # the simulator's name is in no profile


def test_the_device_picker_offers_treadmills_and_serial_ports() -> None:
    from retrotread.tui.devices import find_scanner

    scanner = find_scanner(1.0)
    assert scanner is not None

    async def listen() -> list[str]:
        radio = Radio()
        radio.add(SimPeripheral(FtmsServer(SimTreadmill()), address="C0:01", name="Walker"))
        radio.add(
            ServiceDataOnly(
                FtmsServer(SimTreadmill()),
                address="C0:02",
                name="Rower",
                machine_type=MachineType.ROWER,
            )
        )
        with radio.routed():
            return [choice.url for choice in await scanner()]

    urls = run(listen(), virtual=True)
    assert "ble://C0:01" in urls and "ble://C0:02" not in urls
    assert [u for u in urls if u.startswith("serial://")] == [p.url for p in serial_ports()]
