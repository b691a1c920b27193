"""Command round trip through the full BLE stack on the simulator, on the real clock.

    python bench/ble_roundtrip.py [--quick]

The path measured is the one a real FTMS treadmill takes, minus the air: the ``ble://``
driver -> pyftms -> bleak -> the simulator's bleak backend -> its FTMS GATT server -> the
simulated machine, and back as an indication and Treadmill Data notifications.

* **write -> indication**: ``set_speed`` until the control point answers success;
* **write -> confirmed**: until, in addition, Treadmill Data shows the belt at the target
  within the profile's tolerance. The simulated belt here changes speed instantly and sends
  its next record as soon as the indication is out, so the figure is the software's share;
  on a real machine the belt's ramp and its ~1 Hz notifications dominate (seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import Row, alternate, dist_row, retro_speeds, verdict
from retrotread.clock import LoopClock, run
from retrotread.drivers.base import Report, Telemetry
from retrotread.drivers.ftms_ble import FtmsBleDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.profiles import get_profile
from retrotread.units import Quantity, Unit
from retrotread_sim import MachineSpec, SimTreadmill
from retrotread_sim.ftms import FtmsOptions, FtmsServer, Radio, SimPeripheral


async def _round_trips(samples: int) -> tuple[list[float], list[float]]:
    indicated: list[float] = []
    confirmed: list[float] = []
    machine = SimTreadmill(MachineSpec(accel_kmh_per_s=0, decel_kmh_per_s=0))
    server = FtmsServer(machine, FtmsOptions(data_interval_s=3600))  # records sent below
    radio = Radio()
    peripheral = radio.add(SimPeripheral(server))
    profile = get_profile("generic-ftms")
    tolerance = profile.confirm.tolerance_mph.value
    driver = FtmsBleDriver(
        DeviceUrl.parse(f"ble://{peripheral.address}"),
        profile,
        LoopClock(),
        routing=radio.routed,
    )
    target: list[Quantity] = []
    reached = asyncio.Event()

    def on_report(report: Report) -> None:
        if isinstance(report, Telemetry) and target:
            gap = abs(report.speed.to(Unit.MPH).value - target[0].to(Unit.MPH).value)
            if gap <= tolerance:
                reached.set()

    driver.subscribe(on_report)
    speeds = retro_speeds()
    async with driver:
        await driver.start()
        for i in range(samples):
            speed = speeds[i % len(speeds)]
            target[:] = [speed]
            reached.clear()
            began = time.perf_counter()
            await driver.set_speed(speed)
            indicated.append(time.perf_counter() - began)
            server.notify_treadmill_data()  # the machine's next record, at once
            await reached.wait()
            confirmed.append(time.perf_counter() - began)
        await driver.stop()
    server.close()
    return indicated, confirmed


async def _bare_pyftms(samples: int) -> list[float]:
    """The same writes through a bare pyftms client: no retrotread layers at all. The same
    traffic, too: after each write the machine sends its record and the client reads it, as
    ours does (a side that skips that work between writes runs each write on warmer caches)."""
    from pyftms import FtmsEvents
    from pyftms import Treadmill as PyftmsTreadmill

    from retrotread.drivers.ftms_ble import scan

    indicated: list[float] = []
    record_read = asyncio.Event()

    def on_event(event: FtmsEvents) -> None:
        if event.event_id == "update" and "speed_instant" in event.event_data:
            record_read.set()

    machine = SimTreadmill(MachineSpec(accel_kmh_per_s=0, decel_kmh_per_s=0))
    server = FtmsServer(machine, FtmsOptions(data_interval_s=3600))
    radio = Radio()
    radio.add(SimPeripheral(server))
    speeds = [float(s.to(Unit.KMH).value) + 0.005 for s in retro_speeds()]  # pyftms truncates
    with radio.routed():
        sighting = (await scan(5.0))[0]
        client = PyftmsTreadmill(
            sighting.device, sighting.advertisement, timeout=5.0, on_ftms_event=on_event
        )
        await client.connect()
        await client._write_command(0x00)  # Request Control (pyftms asks it lazily otherwise)
        await client.start_resume()
        for i in range(samples):
            began = time.perf_counter()
            await client.set_target_speed(speeds[i % len(speeds)])
            indicated.append(time.perf_counter() - began)
            record_read.clear()
            server.notify_treadmill_data()  # the machine's next record, at once, as for ours
            await record_read.wait()
        await client.stop()
        await client.disconnect()
    server.close()
    return indicated


def measure(quick: bool = False) -> list[Row]:
    """Ours and bare pyftms in alternating rounds (each round a fresh connection of each), so
    the machine's other load falls on both alike; the verdict is the median of the rounds'
    ratios, with their spread."""
    rounds, writes = (4, 50) if quick else (24, 100)  # rounds: a steadier median
    confirmed: list[float] = []

    def ours() -> list[float]:
        indicated, reached = run(_round_trips(writes))
        confirmed.extend(reached)
        return indicated

    compared = alternate(rounds, ours, lambda: run(_bare_pyftms(writes)))
    return [
        dist_row("BLE stack round trip: write -> indication", compared.a, 10),
        dist_row("BLE stack round trip: write -> confirmed by Treadmill Data", confirmed, 10),
        dist_row("bare pyftms client, same writes: write -> indication", compared.b),
        Row(
            "retrotread's layers over bare pyftms (write -> indication), alternated",
            compared.describe(),
            "median ratio <= 1.2x",
            verdict(compared.median_ratio <= 1.2),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    for row in measure(args.quick):
        print(
            f"{row.metric}: {row.value}"
            + (f"  [{row.target}: {row.verdict}]" if row.target else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
