"""``retrotread scan``: find treadmills — FTMS machines over Bluetooth LE, and serial ports.

A Bluetooth treadmill is recognised by what it advertises, not by its name: the Fitness
Machine Service (0x1826) among its service UUIDs, or FTMS service data (Flags, then the Fitness
Machine Type field whose bit 0 says treadmill). Machines that advertise only the service data
are found too, so the scan listens without a UUID filter and sorts what it hears. Each
treadmill gets the device profile its name matches in the catalogue; one the catalogue does
not know gets the generic FTMS profile and a line naming the quirk options to try.

Serial ports (``serial.tools.list_ports``) are listed beside them: a CSAFE or Trackmaster
console is on one of them. :func:`discover` is what both ``scan`` and the console's device
picker ask.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retrotread.errors import DeviceUnavailable

if TYPE_CHECKING:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

DEFAULT_TIMEOUT_S = 5.0
#: a Bluetooth heart-rate strap (Heart Rate Service 0x180D): listed for `limits --strap`
HEART_STRAP = "heart-rate strap"
GENERIC_FTMS = "generic-ftms"
SERIAL_PROTOCOLS = ("csafe", "trackmaster")


@dataclass(frozen=True)
class Found:
    """One machine or port heard or seen: what the scan table and the device picker show."""

    name: str
    address: str
    url: str
    kind: str  # "treadmill", "rower / indoor bike", "unknown" (FTMS, type unreadable), "serial"
    rssi: int | None = None
    profile: str | None = None  # the catalogue's profile for it (BLE)
    recognised: bool = False  # its name matched a profile of its own (not the generic one)

    @property
    def is_treadmill(self) -> bool | None:
        """True or False for an FTMS machine whose type it advertised; None: cannot tell."""
        if self.kind in ("unknown", "serial"):
            return None
        return self.kind == "treadmill"


def quirk_options() -> list[str]:
    """The ``ble://`` URL options that switch a quirk on, as the driver lists them."""
    from retrotread.drivers.ftms_ble import FtmsBleDriver

    options = FtmsBleDriver.url_options
    return [name for name, help_text in options.items() if help_text.startswith("quirk")]


def ftms_kind(advertisement: AdvertisementData) -> str | None:
    """What an advert says this is: a machine type from FTMS service data, "unknown" for an
    FTMS service without readable type, None for something that is not a fitness machine."""
    from bleak.uuids import normalize_uuid_str
    from pyftms import MachineType, NotFitnessMachineError, get_machine_type_from_service_data

    service = normalize_uuid_str("1826")
    has_data = service in advertisement.service_data
    if not has_data and service not in advertisement.service_uuids:
        return None
    try:
        machine_type = get_machine_type_from_service_data(advertisement)
    except NotFitnessMachineError:
        return "unknown"
    kinds = [(t.name or "?").lower().replace("_", " ") for t in MachineType if t in machine_type]
    return " / ".join(kinds) or "unknown"


def heart_strap(advertisement: AdvertisementData) -> bool:
    from bleak.uuids import normalize_uuid_str

    return normalize_uuid_str("180d") in advertisement.service_uuids


def _ble_found(device: BLEDevice, advertisement: AdvertisementData, kind: str) -> Found:
    from retrotread.profiles import profile_for_device

    name = advertisement.local_name or device.name or device.address
    profile = profile_for_device(name, "ftms")
    return Found(
        name=name,
        address=device.address,
        url=f"ble://{device.address}",
        kind=kind,
        rssi=advertisement.rssi,
        profile=profile.name,
        recognised="*" not in profile.match,
    )


async def scan_bluetooth(seconds: float) -> list[Found]:
    """Fitness machines advertising FTMS (by UUID or service data), strongest first.

    Raises :class:`~retrotread.errors.DeviceUnavailable` when Bluetooth cannot be used.
    """
    from bleak import BleakScanner
    from bleak.exc import BleakError

    from retrotread.drivers.ftms_ble import bluetooth_unavailable

    found: dict[str, Found] = {}

    def heard(device: BLEDevice, advertisement: AdvertisementData) -> None:
        kind = ftms_kind(advertisement)
        if kind is not None:
            found[device.address] = _ble_found(device, advertisement, kind)
        elif heart_strap(advertisement):
            name = advertisement.local_name or device.name or device.address
            found[device.address] = Found(
                name, device.address, device.address, HEART_STRAP, advertisement.rssi
            )

    import asyncio

    try:
        async with BleakScanner(heard):
            await asyncio.sleep(seconds)
    except (BleakError, OSError) as err:
        raise bluetooth_unavailable(err) from err
    return sorted(found.values(), key=lambda f: (-(f.rssi or -999), f.name))


def serial_ports() -> list[Found]:
    """The serial ports this computer has (a console hangs on one; which protocol, only the
    console knows: one entry per protocol)."""
    from serial.tools import list_ports

    ports = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        description = port.description if port.description not in ("", "n/a") else port.device
        for protocol in SERIAL_PROTOCOLS:
            ports.append(
                Found(
                    name=f"{description} ({protocol})",
                    address=port.device,
                    url=f"serial://{port.device}?protocol={protocol}",
                    kind="serial",
                )
            )
    return ports


async def scan_serial(seconds: float = 0.0) -> list[Found]:
    """:func:`serial_ports` in the shape of a driver's ``scan(seconds)`` (nothing to wait for)."""
    return serial_ports()


async def discover(seconds: float = DEFAULT_TIMEOUT_S) -> list[Found]:
    """Bluetooth treadmills (and FTMS machines of unknown type), then serial ports.

    Without usable Bluetooth the serial ports are still listed.
    """
    try:
        machines = [f for f in await scan_bluetooth(seconds) if f.is_treadmill is not False]
    except DeviceUnavailable:
        machines = []
    return machines + serial_ports()


# -- the command -------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "scan",
        help="find treadmills: FTMS over Bluetooth LE, and serial ports",
        description="Listen for machines advertising the Fitness Machine Service (0x1826, by "
        "service UUID or FTMS service data) and list each treadmill's name, address, signal, "
        "device profile and URL; then the serial ports a CSAFE or Trackmaster console may be "
        "on. A treadmill the profile catalogue does not know is played as generic FTMS; the "
        "scan says which quirk options to try.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to listen (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--all", action="store_true", help="also list FTMS machines that are not treadmills"
    )
    parser.add_argument(
        "--simulator",
        action="store_true",
        help="scan an in-process simulated treadmill instead of the radio (through the same "
        "bleak stack, on the virtual clock)",
    )


def cmd_scan(args: argparse.Namespace) -> int:
    async def listen() -> list[Found] | DeviceUnavailable:
        with _simulated_treadmill() if args.simulator else contextlib.nullcontext():
            try:
                return await scan_bluetooth(args.timeout)
            except DeviceUnavailable as err:
                return err

    from retrotread.clock import run  # asyncio loads with the scan, not with --help

    heard = run(listen(), virtual=args.simulator)
    if not isinstance(heard, DeviceUnavailable):
        for line in scan_lines(heard, args.timeout, show_all=args.all):
            print(line)
    for line in serial_lines([] if args.simulator else serial_ports()):
        print(line)
    if isinstance(heard, DeviceUnavailable):
        raise heard  # said after the serial ports, which need no Bluetooth
    return 0


def scan_lines(heard: list[Found], seconds: float, *, show_all: bool) -> list[str]:
    straps = [f for f in heard if f.kind == HEART_STRAP]
    lines = _machine_lines([f for f in heard if f not in straps], seconds, show_all)
    if straps:
        rows = [(f.name, f.address, str(f.rssi)) for f in straps]
        lines += [f"  {row}" for row in _table(("HEART-RATE STRAP", "ADDRESS", "RSSI"), rows)]
        lines.append("Give a client a strap with: retrotread limits --client NAME --strap ADDRESS")
    return lines


def _machine_lines(heard: list[Found], seconds: float, show_all: bool) -> list[str]:
    shown = [f for f in heard if show_all or f.is_treadmill is not False]
    what = "FTMS machines" if show_all else "FTMS treadmills"
    if not shown:
        return [
            f"No {what} heard in {seconds:g} s. Is the treadmill on, in range, and not "
            f"connected to another app (phone, watch, console tablet)?"
        ]
    rows = [
        (f.name, f.address, str(f.rssi), f.kind, f.profile or "", f.url)
        for f in shown
        if f.rssi is not None
    ]
    lines = [f"{what} heard in {seconds:g} s (strongest first):"]
    lines += [
        f"  {row}" for row in _table(("NAME", "ADDRESS", "RSSI", "TYPE", "PROFILE", "URL"), rows)
    ]
    options = quirk_options()
    for found in shown:
        if found.kind == "unknown":
            lines.append(
                f"  {found.name}: advertises FTMS without saying what machine it is; it may "
                f"be a treadmill (try it, or `retrotread probe {found.url}`)"
            )
        if found.is_treadmill and not found.recognised:
            tries = " ".join(f"?{name}=..." for name in options)
            lines.append(
                f"  {found.name}: not in the profile catalogue, played as {GENERIC_FTMS}. If "
                f"speed or incline misbehave, try the quirk options {tries} on its URL, or "
                f"run `retrotread probe {found.url}` for a suggested profile."
            )
    lines.append("Use one with: retrotread run PROGRAM --device URL")
    return lines


def serial_lines(ports: list[Found]) -> list[str]:
    if not ports:
        return ["No serial ports found (a USB serial adapter shows here once plugged in)."]
    lines = ["Serial ports (a CSAFE or Trackmaster console; add &profile=NAME if known):"]
    lines += [f"  {row}" for row in _table(("PORT", "URL"), [(p.address, p.url) for p in ports])]
    return lines


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


@contextlib.contextmanager
def _simulated_treadmill() -> Iterator[None]:
    """A simulated FTMS treadmill advertising on an in-process radio while the scan runs."""
    import asyncio

    from retrotread_sim import SimTreadmill
    from retrotread_sim.ftms import FtmsServer, Radio, SimPeripheral

    asyncio.get_running_loop()  # the machine must read the running loop's clock
    server = FtmsServer(SimTreadmill())
    radio = Radio()
    radio.add(SimPeripheral(server))
    with radio.routed():
        yield
    server.close()
