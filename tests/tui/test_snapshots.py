"""What the console looks like, at 80x24 and 120x40 (pytest-textual-snapshot).

Every picture is taken on the simulator with program time moved by hand, so the digits, the
speeds and the distance are the same on every run. Update after a deliberate change with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from retrotread.program import builtin_programs
from retrotread.tui.devices import offered_devices
from retrotread.tui.screens.error import ErrorModal
from retrotread.tui.screens.summary import SummaryScreen
from tests.tui.console import ConsoleUnderTest, advance, console, go, settle, until
from tests.tui.test_run_rough_edges import serial_device

__all__ = ["serial_device"]  # a fixture

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SnapCompare = Callable[..., bool]


@pytest.mark.parametrize("size", SIZES)
def test_start_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    # The picker's first entries, by name: the picture does not change each time a device
    # profile is bundled (or one is in this machine's config folder).
    wanted = ["sim://", "sim://?profile=generic-csafe", "sim://?profile=generic-ftms"]
    devices = [device for device in offered_devices() if device.url in wanted]
    assert [device.url for device in devices] == wanted
    app = ConsoleUnderTest(programs=builtin_programs(), devices=devices)
    assert snap_compare(app, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_run_screen_retro_block(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def into_the_retro_block(pilot: Pilot[Any]) -> None:
        await go(pilot)
        await advance(pilot, 17)  # 2 s into the retro block: 8 s left
        await settle(pilot)

    assert snap_compare(console(), terminal_size=size, run_before=into_the_retro_block)


@pytest.mark.parametrize("size", SIZES)
def test_run_screen_turn_around(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def turning(pilot: Pilot[Any]) -> None:
        await go(pilot)
        await advance(pilot, 12)  # the turn-around, 3 s before the retro block: 3-2-1
        await settle(pilot)

    assert snap_compare(console(), terminal_size=size, run_before=turning)


@pytest.mark.parametrize("size", SIZES)
def test_run_screen_serial_device_counting_with_a_notice(
    snap_compare: SnapCompare, size: tuple[int, int], serial_device: str
) -> None:
    """A long serial device in the header, the 3-2-1 in the big digits and a notice on the
    message line: the header, the link status and the countdown all in view (issue 19)."""

    async def counting(pilot: Pilot[Any]) -> None:
        await go(pilot)
        await advance(pilot, 7)  # 3 s left in the warm-up: the 3 of the 3-2-1
        pilot.app.notify("Skipped nothing: this notice stays on its own line", timeout=600)
        await settle(pilot)

    assert snap_compare(console(device=serial_device), terminal_size=size, run_before=counting)


@pytest.mark.parametrize("size", SIZES)
def test_summary_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def to_the_end(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await go(pilot)
        await advance(pilot, 40)
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        await settle(pilot)

    assert snap_compare(console(), terminal_size=size, run_before=to_the_end)


@pytest.mark.parametrize("size", SIZES)
def test_error_modal_safety_key(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def pull_the_key(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await go(pilot)
        await advance(pilot, 17)
        await until(pilot, lambda: isinstance(app.screen, ErrorModal), "the modal")
        await settle(pilot)

    app = console(device="sim://?faults=safety-key@17")
    assert snap_compare(app, terminal_size=size, run_before=pull_the_key)


@pytest.mark.parametrize("size", SIZES)
def test_error_modal_device_lost(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def drop_the_link(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await go(pilot)
        await advance(pilot, 18)
        await until(pilot, lambda: isinstance(app.screen, ErrorModal), "the modal")
        await settle(pilot)

    app = console(device="sim://?faults=drop@18+30")
    assert snap_compare(app, terminal_size=size, run_before=drop_the_link)
