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
* **over bare pyftms**: ours against a bare pyftms client on a twin machine, write by write
  in alternating order (whole runs of one then the other drifted apart by up to 2x on a
  shared VM, so the verdict flipped), reported as the median of 24 chunks' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import Alternated, Row, dist_row, retro_speeds, verdict
from retrotread.clock import LoopClock, run
from retrotread.drivers.base import Report, Telemetry
from retrotread.drivers.ftms_ble import FtmsBleDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.profiles import get_profile
from retrotread.units import Quantity, Unit
from retrotread_sim import MachineSpec, SimTreadmill
from retrotread_sim.ftms import FtmsOptions, FtmsServer, Radio, SimPeripheral


async def _paired(samples: int) -> tuple[list[float], list[float], list[float]]:
    """Ours and a bare pyftms client (no retrotread layers at all), each on its own twin of
    the simulated machine in one loop, write by write in alternating order: the machine's
    drifting speed (a shared VM's) falls on both alike, where whole runs of one then the other
    differed by up to 2x. Each side sends the same writes and reads the same Treadmill Data
    record after each, so neither runs its writes on warmer caches."""
    from pyftms import FtmsEvents
    from pyftms import Treadmill as PyftmsTreadmill

    from retrotread.drivers.ftms_ble import scan

    radio = Radio()
    servers = []
    peripherals = []
    for address in ("C0:FF:EE:00:00:01", "C0:FF:EE:00:00:02"):
        machine = SimTreadmill(MachineSpec(accel_kmh_per_s=0, decel_kmh_per_s=0))
        server = FtmsServer(machine, FtmsOptions(data_interval_s=3600))  # records sent below
        servers.append(server)
        peripherals.append(radio.add(SimPeripheral(server, address=address)))
    ours_server, bare_server = servers
    profile = get_profile("generic-ftms")
    tolerance = profile.confirm.tolerance_mph.value
    driver = FtmsBleDriver(
        DeviceUrl.parse(f"ble://{peripherals[0].address}"),
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

    record_read = asyncio.Event()

    def on_event(event: FtmsEvents) -> None:
        if event.event_id == "update" and "speed_instant" in event.event_data:
            record_read.set()

    ours: list[float] = []
    confirmed: list[float] = []
    bare: list[float] = []
    speeds = retro_speeds()
    bare_speeds = [float(s.to(Unit.KMH).value) + 0.005 for s in speeds]  # pyftms truncates

    async def ours_write(i: int) -> None:
        target[:] = [speeds[i % len(speeds)]]
        reached.clear()
        began = time.perf_counter()
        await driver.set_speed(target[0])
        ours.append(time.perf_counter() - began)
        ours_server.notify_treadmill_data()  # the machine's next record, at once
        await reached.wait()
        confirmed.append(time.perf_counter() - began)

    driver.subscribe(on_report)
    with radio.routed():
        sighting = next(
            s for s in await scan(5.0) if s.device.address == peripherals[1].address.upper()
        )
        client = PyftmsTreadmill(
            sighting.device, sighting.advertisement, timeout=5.0, on_ftms_event=on_event
        )

        async def bare_write(i: int) -> None:
            began = time.perf_counter()
            await client.set_target_speed(bare_speeds[i % len(bare_speeds)])
            bare.append(time.perf_counter() - began)
            record_read.clear()
            bare_server.notify_treadmill_data()
            await record_read.wait()

        async with driver:
            await client.connect()
            await client._write_command(0x00)  # Request Control (pyftms asks it lazily)
            await driver.start()
            await client.start_resume()
            for i in range(samples):
                first, second = (ours_write, bare_write) if i % 2 else (bare_write, ours_write)
                await first(i)
                await second(i)
            await driver.stop()
            await client.stop()
            await client.disconnect()
    for server in servers:
        server.close()
    return ours, bare, confirmed


def measure(quick: bool = False) -> list[Row]:
    """Ours and bare pyftms write by write, alternating (see :func:`_paired`); the verdict is
    the median of the chunks' ratios (each chunk ``writes`` pairs), with their spread."""
    chunks, writes = (4, 50) if quick else (24, 100)
    all_ours, all_bare, confirmed = run(_paired(chunks * writes))
    ratios = [
        statistics.median(all_ours[k : k + writes]) / statistics.median(all_bare[k : k + writes])
        for k in range(0, len(all_ours), writes)
    ]
    compared = Alternated(ratios, all_ours, all_bare)
    return [
        dist_row("BLE stack round trip: write -> indication", compared.a, 10),
        dist_row("BLE stack round trip: write -> confirmed by Treadmill Data", confirmed, 10),
        dist_row("bare pyftms client, same writes: write -> indication", compared.b),
        Row(
            "retrotread's layers over bare pyftms (write -> indication), alternated write by write",
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
