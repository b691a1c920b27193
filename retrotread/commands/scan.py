"""``retrotread scan``: find treadmills advertising FTMS (service 0x1826) over Bluetooth LE."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from retrotread.clock import run

DEFAULT_TIMEOUT_S = 5.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "scan",
        help="find FTMS treadmills over Bluetooth LE",
        description="Listen for machines advertising the Fitness Machine Service (0x1826) and "
        "list each treadmill's name, address, signal strength and device URL.",
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
    from retrotread.drivers.ftms_ble import scan

    async def listen() -> list[str]:
        with _simulated_treadmill() if args.simulator else _nothing():
            sightings = await scan(args.timeout)
        shown = [s for s in sightings if args.all or s.is_treadmill]
        return _table([(s.name, s.address, str(s.rssi), s.kind) for s in shown])

    lines = run(listen(), virtual=args.simulator)
    what = "FTMS machines" if args.all else "FTMS treadmills"
    if not lines:
        print(
            f"No {what} found in {args.timeout:g} s. Is the treadmill on, in range, and not "
            f"connected to another app (phone, watch, console tablet)?"
        )
        return 0
    print(f"{what} heard in {args.timeout:g} s (strongest first):")
    for line in lines:
        print(f"  {line}")
    print("Use one with: retrotread run PROGRAM --device URL")
    return 0


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    if not rows:
        return []
    header = ("NAME", "ADDRESS", "RSSI", "TYPE")
    table = [(*header, "URL"), *[(*row, f"ble://{row[1]}") for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(r[:-1], widths, strict=True))
        + "  "
        + r[-1]
        for r in table
    ]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _simulated_treadmill() -> Iterator[None]:
    """A simulated FTMS treadmill advertising on an in-process radio while the scan runs."""
    from retrotread_sim import SimTreadmill
    from retrotread_sim.ftms import FtmsServer, Radio, SimPeripheral

    asyncio.get_running_loop()  # the machine must read the running loop's clock
    server = FtmsServer(SimTreadmill())
    radio = Radio()
    radio.add(SimPeripheral(server))
    with radio.routed():
        yield
    server.close()
