"""Start and summary screens, the device list, and how the console is opened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, RadioButton

from retrotread.cli import main
from retrotread.program import builtin_programs
from retrotread.session import Outcome, SessionSummary
from retrotread.tui.devices import DeviceChoice, choice_from_found, find_scanner, offered_devices
from retrotread.tui.screens.error import ErrorModal
from retrotread.tui.screens.run import RunScreen
from retrotread.tui.screens.start import StartScreen
from retrotread.tui.screens.summary import SummaryScreen
from tests.tui.console import (
    SHORT_PROGRAM,
    ConsoleUnderTest,
    console,
    go,
    machine,
    run_screen,
    settle,
    text_of,
    until,
)

SIZE = (80, 24)


async def test_start_screen_previews_and_starts_only_on_go(tmp_path: Path) -> None:
    app = ConsoleUnderTest(programs=builtin_programs())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        start = app.screen
        assert isinstance(start, StartScreen)
        assert start.program is not None and start.program.name == "first-week"
        assert "2:00 retro" in str(start.query_one("#preview-heading").render())
        await pilot.press("down", "down")  # two-minute-retro
        assert start.program.name == "two-minute-retro"
        assert "7:10 total" in str(start.query_one("#preview-heading").render())
        urls = [choice.url for choice in start.devices]
        start.query_one("#devices", OptionList).highlighted = urls.index(
            "sim://?profile=generic-ftms"
        )
        await settle(pilot)
        assert start.query_one("#device-url", Input).value == "sim://?profile=generic-ftms"
        await pilot.click("#start")
        await settle(pilot)
        assert isinstance(app.screen, RunScreen)
        assert app.session is not None
        assert app.session.program.name == "two-minute-retro"
        await until(pilot, lambda: run_screen(app).waiting_for_go, "ready")
        assert [c for c in machine(app).commands if c.name == "start"] == []
        await go(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")


async def test_start_screen_loads_a_program_file(tmp_path: Path) -> None:
    program_file = tmp_path / "mine.toml"
    program_file.write_text(SHORT_PROGRAM.replace("console-test", "from-a-file"))
    broken_file = tmp_path / "broken.toml"
    broken_file.write_text('name = "broken"\n[[blocks]]\nkind = "sideways"\n')
    app = ConsoleUnderTest(programs=builtin_programs())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        start = app.screen
        assert isinstance(start, StartScreen)
        start.query_one("#program-file", Input).focus()
        start.query_one("#program-file", Input).value = str(broken_file)
        await pilot.press("enter")
        assert "broken.toml" in text_of(app, "#start-message")
        assert start.query_one("#start-message").has_class("-error")
        start.query_one("#program-file", Input).value = str(program_file)
        await pilot.press("enter")
        assert start.program is not None and start.program.name == "from-a-file"
        assert "from-a-file" in str(start.query_one("#preview-heading").render())


async def test_start_screen_refuses_a_bad_device_url() -> None:
    app = ConsoleUnderTest(programs=builtin_programs())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        start = app.screen
        assert isinstance(start, StartScreen)
        start.query_one("#device-url", Input).value = "carrier-pigeon://loft"
        await settle(pilot)
        await pilot.click("#start")
        assert isinstance(app.screen, StartScreen)
        assert "unknown device scheme" in text_of(app, "#start-message")


async def test_unreachable_device_is_a_modal_and_back_to_start() -> None:
    app = ConsoleUnderTest(programs=builtin_programs())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        start = app.screen
        assert isinstance(start, StartScreen)
        start.query_one("#device-url", Input).value = "socket://127.0.0.1:9?protocol=csafe"
        await settle(pilot)
        await pilot.click("#start")
        for _ in range(100):
            if isinstance(app.screen, ErrorModal):
                break
            await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.problem.title == "Cannot reach the device"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, StartScreen)


async def test_scan_results_join_the_device_list() -> None:
    async def scanner() -> list[DeviceChoice]:
        return [DeviceChoice("TREAD-42", "ble://AA:BB:CC:DD:EE:FF", "signal -60 dBm")]

    app = ConsoleUnderTest(programs=builtin_programs(), scanner=scanner)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        start = app.screen
        assert isinstance(start, StartScreen)
        assert start.devices[-1].url == "ble://AA:BB:CC:DD:EE:FF"
        assert "found 1 treadmill" in text_of(app, "#start-message")


def test_device_choices_from_profiles_and_scans() -> None:
    offered = offered_devices()
    assert offered[0].url == "sim://"
    assert "sim://?profile=generic-ftms" in [choice.url for choice in offered]

    class Sighting:
        address = "AA:BB:CC:DD:EE:FF"
        name = "TREAD-42"
        rssi = -60
        is_treadmill = True
        kind = "treadmill"

    class Bike(Sighting):
        is_treadmill = False
        kind = "indoor bike"

    choice = choice_from_found(Sighting(), "ble")
    assert choice == DeviceChoice("TREAD-42", "ble://AA:BB:CC:DD:EE:FF", "signal -60 dBm")
    assert choice_from_found(Bike(), "ble") is None
    assert find_scanner() is not None  # the BLE driver offers one


async def test_summary_records_how_it_went() -> None:
    recorded: list[tuple[SessionSummary, str, str]] = []

    def on_outcome(summary: SessionSummary, outcome: str, note: str) -> None:
        recorded.append((summary, outcome, note))

    app = console(on_outcome=on_outcome)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the end", 50)
        summary_screen = app.screen
        assert isinstance(summary_screen, SummaryScreen)
        summary = summary_screen.summary
        assert summary.outcome is Outcome.COMPLETED
        assert summary.blocks_done == summary.blocks_total == 5
        assert summary.retro_s == pytest.approx(10)
        assert "Completed" in text_of(app, "#summary-title")
        await pilot.click("#feedback-pain")
        summary_screen.query_one("#note", Input).value = "left knee after the second interval"
        await pilot.press("ctrl+s")
        assert recorded == [(summary, "pain", "left knee after the second interval")]
        assert "Saved" in text_of(app, "#save-message")
        assert summary_screen.query_one("#save", Button).disabled
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, StartScreen)


async def test_summary_save_needs_a_choice_and_survives_a_failing_store() -> None:
    def failing(summary: SessionSummary, outcome: str, note: str) -> None:
        raise OSError("disk full")

    app = console(on_outcome=failing)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        screen = app.screen
        assert isinstance(screen, SummaryScreen)
        assert not any(b.value for b in screen.query(RadioButton))  # stopped early: ask
        await pilot.press("ctrl+s")
        assert "Choose how it went" in text_of(app, "#save-message")
        await pilot.click("#feedback-dizziness")
        await pilot.press("ctrl+s")
        assert "Could not save: disk full" in text_of(app, "#save-message")
        await pilot.press("q")
        await settle(pilot)
        assert app.return_value is not None


def test_the_core_never_imports_textual() -> None:
    code = (
        "import sys\n"
        "import retrotread.cli, retrotread.session, retrotread.scheduler, retrotread.headless\n"
        "import retrotread.drivers.sim, retrotread.store, retrotread.tui.command\n"
        "from retrotread.cli import main\n"
        "main(['programs'])\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_tui_command_checks_its_arguments_before_taking_the_screen(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tui", "no-such-program"]) == 2
    assert "no such built-in program" in capsys.readouterr().err
    assert main(["tui", "first-week", "--device", "carrier-pigeon://loft"]) == 2
    assert "unknown device scheme" in capsys.readouterr().err


def test_no_arguments_without_a_terminal_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "tui" in capsys.readouterr().out
