"""The console's rough edges from issue 19, each through Pilot on the in-process simulator: the
3-2-1 in the big digits, a long serial device in the header, notices that cover nothing (and
leave nothing after STOP), ``w`` in the footer, every mistake of a bad program file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Input, Static
from textual.widgets._toast import Toast

from retrotread.clock import Clock
from retrotread.drivers import registry
from retrotread.drivers.base import Treadmill
from retrotread.program import builtin_programs
from retrotread.tui import app as console_app
from retrotread.tui.app import ConsoleApp
from retrotread.tui.screens.run import RunScreen
from retrotread.tui.screens.start import StartScreen
from retrotread.tui.screens.summary import SummaryScreen
from retrotread.tui.widgets.countdown import BigCountdown
from retrotread.tui.widgets.link import LinkState, LinkStatus
from tests.tui.console import ConsoleUnderTest, advance, console, go, run_screen, settle, until

SMALL, LARGE = (80, 24), (120, 40)
#: A CSAFE treadmill behind a USB adapter, named the way udev names it.
SERIAL_URL = (
    "serial:///dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    "?protocol=csafe&profile=matrix-csafe"
)


def screen_text(app: ConsoleApp) -> list[str]:
    """Every row on the terminal now, as drawn (what a person sees, toasts included)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def uncovered(app: ConsoleApp, widget: Widget) -> bool:
    """Whether every cell of ``widget`` shows the widget itself (or one of its children)."""
    region = widget.region
    for y in range(region.y, region.bottom):
        for x in range(region.x, region.right):
            top, _ = app.screen.get_widget_at(x, y)
            if top is not widget and widget not in top.ancestors:
                return False
    return True


def serial_named_simulator(url: str) -> Iterator[None]:
    """The console opens the simulator for ``url`` but under the name the serial driver gives
    that device (the header is what is tested; no serial port is opened)."""
    serial_name = registry.open_treadmill(url).name

    def open_treadmill(device: str, *, clock: Clock | None = None) -> Treadmill:
        if device != url:
            return registry.open_treadmill(device, clock=clock)
        treadmill = registry.open_treadmill("sim://?profile=matrix-csafe", clock=clock)
        treadmill.name = serial_name
        return treadmill

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(console_app, "open_treadmill", open_treadmill)
        yield


@pytest.fixture
def serial_device() -> Iterator[str]:
    yield from (SERIAL_URL for _ in serial_named_simulator(SERIAL_URL))


async def test_the_3_2_1_fills_the_big_digits() -> None:
    app = console()
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot)
        countdown = run_screen(app).query_one(BigCountdown)
        await advance(pilot, 6)
        assert countdown.text == "0:04"
        for count in ("3", "2", "1"):
            await advance(pilot, 1)
            assert countdown.text == count
            assert countdown.has_class("-counting")
        await advance(pilot, 1)  # the turn-around: its own time again
        assert countdown.text == "0:05" and not countdown.has_class("-counting")
        await advance(pilot, 2)  # 3 s left in the turn: counting again, then +15 s
        assert countdown.text == "3"
        await pilot.press("e")
        await settle(pilot)
        assert countdown.text == "0:18" and not countdown.has_class("-counting")


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
async def test_a_long_serial_device_leaves_the_link_status_in_view(
    serial_device: str, size: tuple[int, int]
) -> None:
    app = console(device=serial_device)
    async with app.run_test(size=size) as pilot:
        await go(pilot)
        link = run_screen(app).query_one(LinkState)
        assert link.device.startswith("csafe treadmill on /dev/serial/by-id/usb-FTDI")
        header = screen_text(app)[0]
        assert header.startswith(" console-test")
        assert header.rstrip().endswith("■ connected")
        assert "csafe treadmill on /dev/" in header
        assert link.region.right <= size[0]


async def test_notices_cover_neither_the_pace_nor_the_link_and_leave_nothing_after_stop() -> None:
    app = console()
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot)
        screen = run_screen(app)
        await advance(pilot, 2)
        await pilot.press("n")  # skipped: a notice
        await settle(pilot)
        await pilot.press("e")  # +15 s: another
        for _ in range(5):  # refused past the band's top: a warning notice each
            await pilot.press("plus")
        app.notify("a notice from elsewhere in the console", timeout=30)
        await settle(pilot)
        assert list(app.screen.query(Toast)) == []
        assert uncovered(app, screen.query_one("#pace"))
        assert uncovered(app, screen.query_one(LinkState))
        assert uncovered(app, screen.query_one(BigCountdown))
        line = screen.query_one("#warning", Static)
        assert "a notice from elsewhere" in str(line.render())
        assert line.has_class("-notice")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        await settle(pilot)
        assert list(app.screen.query(Toast)) == []
        assert not any("notice" in row or "Skipped" in row for row in screen_text(app))


async def test_a_warning_keeps_the_line_over_a_notice() -> None:
    app = console(device="sim://?faults=reject:set-speed=invalid-parameter@12")
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot)
        screen = run_screen(app)
        await until(pilot, lambda: bool(screen.warning), "the rejected speed", seconds=20)
        app.notify("routine")
        await settle(pilot)
        line = screen.query_one("#warning", Static)
        assert str(line.render()) == screen.warning
        assert line.has_class("-shown") and not line.has_class("-notice")


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
async def test_the_footer_shows_w_for_the_walker_view(size: tuple[int, int]) -> None:
    app = console()
    async with app.run_test(size=size) as pilot:
        await go(pilot)
        assert isinstance(app.screen, RunScreen)
        footer = screen_text(app)[-1]
        for key in ("s STOP", "space Pause", "w Walker", "m Mute", "q Quit"):
            assert key in footer, footer


async def test_a_bad_program_file_shows_every_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        'name = "broken"\n'
        '[[blocks]]\nkind = "sideways"\nduration = 30\n'
        '[[blocks]]\nkind = "warm-up"\nduration = -5\nspeed = 2.5\n'
        '[[blocks]]\nkind = "retro"\nduration = 30\nspeed = 3.0\nhandrail = "one-foot"\n'
    )
    app = ConsoleUnderTest(programs=builtin_programs())
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        start = app.screen
        assert isinstance(start, StartScreen)
        start.query_one("#program-file", Input).value = str(broken)
        start.query_one("#program-file", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        preview = start.query_one("#preview", Static)
        shown = str(preview.render())
        for line in ("line 3: block 1", "line 7: block 2", "line 13: block 3"):
            assert line in shown, shown
        assert "3 problems" in str(start.query_one("#preview-heading", Static).render())
        scroll = start.query_one("#preview-scroll")
        assert preview.region.height >= 3
        assert preview.virtual_region.height <= scroll.size.height  # all of it in view
        assert start.query_one("#start-message").has_class("-error")
        await pilot.press("q")


def test_the_link_text_gives_way_in_the_device_name_never_the_status() -> None:
    from retrotread.tui.widgets.link import link_text

    device = "csafe treadmill on /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    for width in (12, 20, 40, 200):
        for status in LinkStatus:
            text = link_text(device, status, width).plain
            assert text.endswith(f"■ {status.value}")
            assert len(text) <= max(width, len(f" ■ {status.value}"))
    assert link_text("simulator (simulator)", LinkStatus.CONNECTED, 80).plain == (
        "simulator (simulator) ■ connected"
    )
