"""Command round trip over a pty at real line rate: retrotread's driver against a bare pyserial
client on the same link, alternated.

    python bench/serial_roundtrip.py [--quick]

Starts ``retrotread-sim serve --line-rate`` (CSAFE at 9600 baud, Trackmaster at 4800) in another
process. In alternating rounds, retrotread's own driver (its telemetry polls running as in a
session) and a bare pyserial client (write the same frame, read the answer) send the same
commands over the same pty. Their ratio is what retrotread adds; the floor — the time the
bytes need on the wire, (request + answer bytes) x 10 bits (8N1) / baud — is shown for both,
and what a bare client measures above it is the pty, two processes and the simulator's event
loop, which a real console at that baud rate would have in its own form (its firmware's
answer time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import Alternated, Row, alternate, dist_row, verdict
from retrotread.drivers.csafe import CsafeDriver
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.trackmaster import TrackmasterDriver, encode
from retrotread.profiles import get_profile
from retrotread.protocols import csafe
from retrotread.units import Quantity, mph
from retrotread_sim.serve import SimProcess

BITS_PER_BYTE = 10
SPEEDS = (mph("2.6"), mph("3.2"))
TARGET_RATIO = 1.2  # issue 8: serial within 1.2x of what the link itself allows


@dataclass(frozen=True)
class Link:
    name: str
    protocol: str
    options: tuple[str, ...]
    baud: int
    request: Callable[[Quantity], bytes]  # the set-speed frame itself
    ours: Callable[[str, int], Coroutine[Any, Any, list[float]]]


#: one exchange: the bytes sent, and how many bytes the answer has
Exchange = tuple[bytes, int]


async def _timed(count: int, command: Callable[[Quantity], Awaitable[object]]) -> list[float]:
    times = []
    for n in range(count):
        began = time.perf_counter()
        await command(SPEEDS[n % 2])
        times.append(time.perf_counter() - began)
    return times


async def _ours_csafe(address: str, count: int) -> list[float]:
    driver = open_treadmill(f"serial://{address}?protocol=csafe&poll=1")
    assert isinstance(driver, CsafeDriver)
    async with driver:
        await driver.start()
        times = await _timed(count, driver.set_speed)
        await driver.stop()
    return times


async def _ours_trackmaster(address: str, count: int) -> list[float]:
    querying = get_profile("generic-trackmaster").with_quirks(status_query=True)
    driver = open_treadmill(f"serial://{address}?protocol=trackmaster&poll=1", profile=querying)
    assert isinstance(driver, TrackmasterDriver)
    async with driver:
        await driver.start()
        times = await _timed(count, driver.set_speed)
        await driver.stop()
    return times


def _csafe_request(speed: Quantity) -> bytes:
    """The frame retrotread's CSAFE driver sends (its speed unit, no address byte)."""
    driver = open_treadmill("serial:///dev/null?protocol=csafe")
    assert isinstance(driver, CsafeDriver)
    return csafe.encode_frame([csafe.set_speed(speed, driver.speed_unit)])


def _trackmaster_request(speed: Quantity) -> bytes:
    return encode("A3", round(float(speed.to(SPEEDS[0].unit).value) * 10))


LINKS = (
    Link("CSAFE SetSpeed", "csafe", ("--line-rate",), 9600, _csafe_request, _ours_csafe),
    Link(
        "Trackmaster A3 speed",
        "trackmaster",
        ("--line-rate", "--status-query"),
        4800,
        _trackmaster_request,
        _ours_trackmaster,
    ),
)


@dataclass(frozen=True)
class Wire:
    """What retrotread put on the wire: its start-up, and each set-speed's exchanges."""

    start: list[Exchange]
    per_speed: list[list[Exchange]]


def exchanges_per_set_speed(link: Link) -> Wire:
    """What retrotread's ``set_speed`` puts on the wire, for each of the two speeds: the frames
    from one set-speed to the next (the command, and any status check the driver makes), read
    from the simulator's record of a short run. The bare client replays exactly these."""
    with tempfile.TemporaryDirectory(prefix="retrotread-bench-") as folder:
        record = Path(folder) / "wire.jsonl"
        with SimProcess(link.protocol, *link.options, record=record) as sim:
            asyncio.run(link.ours(sim.address, 10))
        frames = [json.loads(line) for line in record.read_text().splitlines()]
    wire = [
        (bytes.fromhex(f["rx"].replace(" ", "")), len(bytes.fromhex(f["tx"].replace(" ", ""))))
        for f in frames
        if f.get("event") == "frame" and f.get("rx") and f.get("tx")
    ]
    starts = {link.request(speed): n for n, speed in enumerate(SPEEDS)}
    first = next(n for n, (sent, _) in enumerate(wire) if sent in starts)
    groups: list[list[Exchange]] = []
    for sent, answer in wire:
        if sent in starts:
            groups.append([])
        if groups:
            groups[-1].append((sent, answer))
    middle = groups[2:-2]  # not the first (start-up) nor the last (the stop follows)
    chosen = []
    for speed in SPEEDS:
        mine = [tuple(g) for g in middle if g[0][0] == link.request(speed)]
        chosen.append(list(Counter(mine).most_common(1)[0][0]))
    return Wire(wire[:first], chosen)


def _exchange(link: Link, port: serial.Serial, sent: bytes, answer_bytes: int) -> None:
    port.write(sent)
    if link.protocol == "csafe":  # a frame ends with F2, whatever the machine's state
        answer = port.read_until(b"\xf2")
        ok = answer.endswith(b"\xf2")
    else:
        ok = len(port.read(answer_bytes)) == answer_bytes
    if not ok:
        raise TimeoutError(f"{link.name}: no answer to {sent.hex(' ')}")


def _bare(link: Link, address: str, count: int, wire: Wire) -> list[float]:
    """The same exchanges from a bare pyserial client: write each frame, read its answer."""
    times = []
    with serial.serial_for_url(address, baudrate=link.baud, timeout=2.0) as port:
        port.reset_input_buffer()
        for sent, answer_bytes in wire.start:  # the machine in use, as retrotread leaves it
            _exchange(link, port, sent, answer_bytes)
        for n in range(count):
            began = time.perf_counter()
            for sent, answer_bytes in wire.per_speed[n % 2]:
                _exchange(link, port, sent, answer_bytes)
            times.append(time.perf_counter() - began)
    return times


def compare(link: Link, rounds: int, count: int) -> tuple[Alternated, Wire]:
    wire = exchanges_per_set_speed(link)
    with SimProcess(link.protocol, *link.options) as sim:
        compared = alternate(
            rounds,
            lambda: asyncio.run(link.ours(sim.address, count)),
            lambda: _bare(link, sim.address, count, wire),
        )
    return compared, wire


def measure(quick: bool = False) -> list[Row]:
    rounds, count = (4, 30) if quick else (6, 50)
    rows = []
    for link in LINKS:
        compared, wire = compare(link, rounds, count)
        sequences = wire.per_speed
        wire_bytes = sum(len(sent) + answer for sent, answer in sequences[0])
        floor = wire_bytes * BITS_PER_BYTE / link.baud
        ours_p50, bare_p50 = statistics.median(compared.a), statistics.median(compared.b)
        row = dist_row(f"{link.name} round trip, pty at {link.baud} baud (retrotread)", compared.a)
        rows.append(
            Row(
                row.metric,
                f"{row.value}; {len(sequences[0])} exchange(s), {wire_bytes} bytes: floor "
                f"{floor * 1000:.2f} ms; ours {ours_p50 / floor:.2f}x, bare client "
                f"{bare_p50 / floor:.2f}x the floor",
            )
        )
        rows.append(
            Row(
                f"{link.name}: retrotread over a bare pyserial client, same bytes, same link, "
                "alternated",
                compared.describe(unit_us=False),
                f"median ratio <= {TARGET_RATIO:g}x",
                verdict(compared.median_ratio <= TARGET_RATIO),
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and commands")
    args = parser.parse_args()
    for row in measure(args.quick):
        print(
            f"{row.metric}: {row.value}"
            + (f"  [{row.target}: {row.verdict}]" if row.target else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
