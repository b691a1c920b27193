"""Command round trip over a pty at real line rate, against the floor the baud rate sets.

    python bench/serial_roundtrip.py [--quick] [--count N]

Starts ``retrotread-sim serve --line-rate`` (CSAFE at 9600 baud, Trackmaster at 4800) in another
process and times commands through retrotread's own drivers, with their telemetry polls running
as in a session. The floor is the time the bytes need on the wire, both ways: (request + answer
bytes) x 10 bits (8N1) / baud. The ratio says what everything else adds: the pty, two
processes, the reader thread, two event loops, and the simulator's own timers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import Row, dist_row
from retrotread.drivers.csafe import POLL_COMMANDS, CsafeDriver
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.trackmaster import TrackmasterDriver, encode
from retrotread.profiles import get_profile
from retrotread.protocols import csafe
from retrotread.units import Quantity, mph
from retrotread_sim.serve import SimProcess

BITS_PER_BYTE = 10
SPEEDS = (mph("2.6"), mph("3.2"))
TARGET_RATIO = 1.2  # issue 8: serial within 1.2x of the floor the baud rate sets


@dataclass(frozen=True)
class Measurement:
    name: str
    baud: int
    request_bytes: int
    answer_bytes: int
    times: list[float]

    @property
    def floor_s(self) -> float:
        return (self.request_bytes + self.answer_bytes) * BITS_PER_BYTE / self.baud

    @property
    def ratio(self) -> float:
        return statistics.median(self.times) / self.floor_s


async def _timed(count: int, command: Callable[[Quantity], Awaitable[object]]) -> list[float]:
    times = []
    for n in range(count):
        began = time.perf_counter()
        await command(SPEEDS[n % 2])
        times.append(time.perf_counter() - began)
    return times


async def _csafe(address: str, count: int) -> list[Measurement]:
    driver = open_treadmill(f"serial://{address}?protocol=csafe&poll=1")
    assert isinstance(driver, CsafeDriver)
    async with driver:
        await driver.start()
        set_speed = len(csafe.encode_frame([csafe.set_speed(SPEEDS[0], driver.speed_unit)]))
        speed_times = await _timed(count, driver.set_speed)
        poll = len(csafe.encode_frame(POLL_COMMANDS))
        poll_times = await _timed(count, lambda _: driver._poll())  # the poll loop's exchange
        await driver.stop()
    return [
        # answer F1 <status> 25 00 <checksum> F2
        Measurement("CSAFE SetSpeed", 9600, set_speed, 6, speed_times),
        # answer F1, status, 80 00, four readings as <id> 03 <3 bytes>, checksum, F2
        Measurement("CSAFE telemetry poll", 9600, poll, 26, poll_times),
    ]


async def _trackmaster(address: str, count: int) -> list[Measurement]:
    querying = get_profile("generic-trackmaster").with_quirks(status_query=True)
    driver = open_treadmill(f"serial://{address}?protocol=trackmaster&poll=1", profile=querying)
    assert isinstance(driver, TrackmasterDriver)
    async with driver:
        await driver.start()
        times = await _timed(count, driver.set_speed)
        await driver.stop()
    return [Measurement("Trackmaster A3 speed", 4800, len(encode("A3", 26)), len(b"B3\r"), times)]


def run_all(count: int) -> list[Measurement]:
    with SimProcess("csafe", "--line-rate") as sim:
        results = asyncio.run(_csafe(sim.address, count))
    with SimProcess("trackmaster", "--line-rate", "--status-query") as sim:
        results += asyncio.run(_trackmaster(sim.address, count))
    return results


def measure(quick: bool = False) -> list[Row]:
    rows = []
    for result in run_all(50 if quick else 200):
        row = dist_row(
            f"{result.name} round trip, pty at {result.baud} baud "
            f"(floor {result.floor_s * 1000:.2f} ms, p50/floor {result.ratio:.2f})",
            result.times,
        )
        verdict = "ok" if result.ratio <= TARGET_RATIO else "MISSED"
        rows.append(Row(row.metric, row.value, f"p50 <= {TARGET_RATIO:g} x floor", verdict))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="50 commands, not 200")
    parser.add_argument("--count", type=int, help="commands per measurement")
    args = parser.parse_args()
    count = args.count or (50 if args.quick else 200)
    print(f"{count} commands each over a pty to `retrotread-sim serve --line-rate`\n")
    for result in run_all(count):
        ordered = sorted(result.times)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(
            f"{result.name:<21} {result.baud:>4} baud  "
            f"{result.request_bytes:>2}+{result.answer_bytes:<2} bytes  "
            f"floor {result.floor_s * 1000:6.2f} ms  min {ordered[0] * 1000:6.2f}  "
            f"p50 {statistics.median(ordered) * 1000:6.2f}  p95 {p95 * 1000:6.2f} ms  "
            f"p50/floor {result.ratio:4.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
