"""A simulated FTMS treadmill on an in-process radio, and the ``ble://`` driver reaching it.

Everything between the driver and the simulated machine is the real stack — pyftms, bleak,
bleak-retry-connector — over the simulator's bleak backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from retrotread.clock import LoopClock, run
from retrotread.drivers.base import MachineEvent, MachineEventKind, Report, Telemetry
from retrotread.drivers.ftms_ble import FtmsBleDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.profiles import Profile
from retrotread.units import Quantity, mph, quantize
from retrotread_sim import MachineSpec, SimTreadmill
from retrotread_sim.ftms import (
    ControlPointWrite,
    FtmsOptions,
    FtmsServer,
    Radio,
    SimPeripheral,
    personality,
)


@dataclass
class BleRig:
    machine: SimTreadmill
    server: FtmsServer
    radio: Radio
    peripheral: SimPeripheral
    driver: FtmsBleDriver
    reports: list[Report] = field(default_factory=list)

    @property
    def writes(self) -> list[str]:
        """Every control point write that reached the simulated machine, as hex."""
        return [w.hex for w in self.server.writes]

    @property
    def events(self) -> list[MachineEventKind]:
        return [r.kind for r in self.reports if isinstance(r, MachineEvent)]

    @property
    def telemetry(self) -> list[Telemetry]:
        return [r for r in self.reports if isinstance(r, Telemetry)]


def ble_rig(
    query: str = "",
    *,
    spec: MachineSpec | None = None,
    options: FtmsOptions | None = None,
    profile: Profile | None = None,
    name: str | None = None,
    by_name: bool = False,
    kind: str | None = None,
) -> BleRig:
    """A rig whose driver is not connected yet (use ``async with rig.driver``).

    ``kind`` names the simulator's FTMS personality (``strict``, ``lenient``); ``options``
    gives them all instead.
    """
    machine = SimTreadmill(spec)
    server = FtmsServer(machine, options or (personality(kind) if kind else None))
    radio = Radio()
    peripheral = radio.add(SimPeripheral(server, name=name))
    target = f"ble://?name={quote(peripheral.name)}" if by_name else f"ble://{peripheral.address}"
    url = target + (("&" if by_name else "?") + query if query else "")
    driver = FtmsBleDriver.from_url(
        DeviceUrl.parse(url), clock=LoopClock(), profile=profile, routing=radio.routed
    )
    rig = BleRig(machine, server, radio, peripheral, driver)
    driver.subscribe(rig.reports.append)
    return rig


async def first_write(server: FtmsServer, op: str, after: float) -> float:
    """The time of the first control point write starting with ``op`` later than ``after``,
    waiting for it if it has not come yet."""
    for write in server.writes:
        if write.time > after and write.hex.startswith(op):
            return write.time
    came: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def arrived(write: ControlPointWrite) -> None:
        if write.time > after and write.hex.startswith(op) and not came.done():
            came.set_result(write.time)

    stop_watching = server.watch_writes(arrived)
    try:
        return await came
    finally:
        stop_watching()


RETRO_LOW, RETRO_HIGH = mph("2.6"), mph("3.2")


def play(scenario: Callable[[BleRig], Awaitable[None]], *args: Any, **options: Any) -> None:
    """On the virtual clock: build a rig (``ble_rig(*args, **options)``), connect its driver,
    run ``scenario``, close."""

    async def main() -> None:
        rig = ble_rig(*args, **options)  # inside the loop: the machine reads the loop's clock
        async with rig.driver:
            await scenario(rig)
        rig.server.close()

    run(main(), virtual=True)


def retro(rig: BleRig, speed: str) -> Quantity:
    """The speed the governor would send for ``speed`` mph inside the retro band."""
    return quantize(mph(speed), RETRO_LOW, RETRO_HIGH, rig.driver.capabilities.speed.increment)
